package maildir

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Message is a delivered email as Read finds it.
type Message struct {
	// Path is the message's file, in new/ or cur/.
	Path   string
	Header mail.Header
	// MessageID is the Message-ID without its angle brackets, as in
	// notifications.Email.
	MessageID string
	// Subject is decoded from RFC 2047.
	Subject string
	// Text and HTML are the decoded text/plain and text/html parts, with
	// line ends as LF; empty when the message has no such part.
	Text string
	HTML string
}

// Read parses every message in dir's new/ and cur/ folders, sorted by file
// name, which starts with the delivery time. It is for tests and tools that
// check what eventflow delivered; it assumes UTF-8 (or ASCII) text, which
// is what eventflow writes.
func Read(dir string) ([]*Message, error) {
	var paths []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				paths = append(paths, filepath.Join(dir, sub, e.Name()))
			}
		}
	}
	slices.SortFunc(paths, func(a, b string) int { return strings.Compare(filepath.Base(a), filepath.Base(b)) })
	msgs := make([]*Message, 0, len(paths))
	for _, p := range paths {
		m, err := readFile(p)
		if err != nil {
			return nil, fmt.Errorf("maildir: %s: %w", p, err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func readFile(path string) (*Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mm, err := mail.ReadMessage(f)
	if err != nil {
		return nil, err
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(mm.Header.Get("Subject"))
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	m := &Message{
		Path:      path,
		Header:    mm.Header,
		MessageID: strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(mm.Header.Get("Message-Id")), "<"), ">"),
		Subject:   subject,
	}
	if err := m.readPart(mm.Header.Get("Content-Type"), mm.Header.Get("Content-Transfer-Encoding"), mm.Body); err != nil {
		return nil, err
	}
	return m, nil
}

// readPart stores the text/plain and text/html found in a body of the
// given Content-Type, descending into multipart bodies.
func (m *Message) readPart(contentType, encoding string, body io.Reader) error {
	mediaType, params := "text/plain", map[string]string{}
	if contentType != "" {
		var err error
		if mediaType, params, err = mime.ParseMediaType(contentType); err != nil {
			return fmt.Errorf("content type %q: %w", contentType, err)
		}
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		r := multipart.NewReader(body, params["boundary"])
		for {
			// Raw, because NextPart decodes quoted-printable but not
			// base64; decode does both.
			p, err := r.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("multipart: %w", err)
			}
			if err := m.readPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	var dst *string
	switch mediaType {
	case "text/plain":
		dst = &m.Text
	case "text/html":
		dst = &m.HTML
	default:
		return nil // attachments and the like: not eventflow's
	}
	if *dst != "" {
		return nil // the first of each kind counts
	}
	b, err := io.ReadAll(decode(encoding, body))
	if err != nil {
		return fmt.Errorf("%s part: %w", mediaType, err)
	}
	*dst = strings.ReplaceAll(string(b), "\r\n", "\n")
	return nil
}

// decode undoes a Content-Transfer-Encoding; 7bit, 8bit and binary need
// nothing.
func decode(encoding string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r) // skips the CR LF between lines
	}
	return r
}
