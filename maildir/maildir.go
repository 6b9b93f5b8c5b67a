// Package maildir is eventflow's embedded mail sink: a
// notifications.EmailSender that delivers each email as a file into a
// Maildir folder, which any mail client (mutt -f, Thunderbird, Dovecot) can
// open, instead of sending it to an SMTP server. The message is built by
// smtp.BuildMessage, so it is byte for byte what the SMTP path would send,
// apart from the Date and the MIME boundary.
//
// Delivery follows the Maildir rules (write into tmp/, then rename into
// new/), and is idempotent by Message-ID: a retried delivery finds its own
// earlier one and writes nothing, even after a mail client has moved the
// message to cur/ or deleted it.
package maildir

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/smtp"
)

// indexDir is the folder, beside tmp, new and cur, that records which
// Message-IDs were delivered. Mail clients ignore it: Maildir++ subfolders
// start with a dot, and Dovecot keeps its own index files there too.
const indexDir = "eventflow-delivered"

// Maildir delivers emails into one Maildir folder. It is safe for
// concurrent use, also by several processes sharing the folder.
type Maildir struct {
	dir  string
	host string
}

var _ notifications.EmailSender = (*Maildir)(nil)

// New creates dir with its tmp, new and cur folders (and the delivery
// index) when they are missing, and returns a Maildir delivering there.
func New(dir string) (*Maildir, error) {
	if dir == "" {
		return nil, errors.New("maildir: empty path")
	}
	for _, sub := range []string{"tmp", "new", "cur", indexDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// The Maildir convention escapes the two characters with a meaning in
	// file names: "/" and ":" (which starts the info part in cur/).
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return &Maildir{dir: dir, host: host}, nil
}

// SendEmail delivers m into new/, unless a message with m.MessageID was
// delivered before, in which case it does nothing and returns nil. Invalid
// input is a notifications.Permanent error; file system errors are
// temporary.
//
// The steps, each of which may be interrupted by a crash:
//  1. the message is written and synced to tmp/<name>;
//  2. the index entry for the Message-ID, whose content is <name>, is
//     created atomically (a hard link of a complete file), which only one
//     delivery of the same Message-ID can win;
//  3. tmp/<name> is renamed to new/<name>.
//
// A retry after a crash between 2 and 3 finds the index entry and finishes
// step 3 for the earlier attempt; after a crash before 2 it starts over, and
// the orphan in tmp/ is left for Maildir cleaners, as the convention says.
func (md *Maildir) SendEmail(ctx context.Context, m notifications.Email) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msg, err := smtp.BuildMessage(m)
	if err != nil {
		return err
	}
	index := md.indexPath(m.MessageID)
	if _, err := os.Lstat(index); err == nil {
		return md.finish(index)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("maildir: %w", err)
	}

	name := md.uniqueName()
	tmp := filepath.Join(md.dir, "tmp", name)
	if err := writeFile(tmp, func(f *os.File) error { return smtp.WriteMessage(f, msg) }); err != nil {
		return fmt.Errorf("maildir: write message: %w", err)
	}
	won, err := md.claim(index, name)
	if err != nil || !won {
		os.Remove(tmp)
		if err != nil {
			return fmt.Errorf("maildir: index: %w", err)
		}
		return md.finish(index) // a concurrent delivery of the same Message-ID won
	}
	dst := filepath.Join(md.dir, "new", name)
	if err := os.Rename(tmp, dst); err != nil {
		// A concurrent retry that lost the claim may have finished this
		// delivery already (see finish).
		if _, serr := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) || serr != nil {
			return fmt.Errorf("maildir: deliver: %w", err)
		}
	}
	if err := syncDir(filepath.Join(md.dir, "new")); err != nil {
		return fmt.Errorf("maildir: deliver: %w", err)
	}
	return nil
}

// indexPath is the index entry for a Message-ID: its SHA-256, so that any
// Message-ID makes a safe file name of fixed length.
func (md *Maildir) indexPath(messageID string) string {
	sum := sha256.Sum256([]byte(messageID))
	return filepath.Join(md.dir, indexDir, hex.EncodeToString(sum[:]))
}

// uniqueName is a Maildir file name: seconds, then M<microseconds>
// P<pid> R<random> (Dovecot's form of the unique part), then the host.
func (md *Maildir) uniqueName() string {
	now := time.Now()
	return fmt.Sprintf("%d.M%dP%dR%s.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(),
		rand.Text()[:16], md.host)
}

// claim creates the index entry, holding name, and reports whether this
// call created it. The content is written to a temporary file first and
// linked into place, so that an entry is never seen half-written.
func (md *Maildir) claim(index, name string) (bool, error) {
	part := index + "." + rand.Text()[:16] + ".part"
	defer os.Remove(part)
	if err := writeFile(part, func(f *os.File) error { _, err := f.WriteString(name); return err }); err != nil {
		return false, err
	}
	if err := os.Link(part, index); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, syncDir(filepath.Dir(index))
}

// finish completes a delivery whose index entry exists: if its message is
// still in tmp/ (the delivery was interrupted), it moves it into new/.
// Anywhere else (new/, cur/, deleted) the delivery is done.
func (md *Maildir) finish(index string) error {
	b, err := os.ReadFile(index)
	if err != nil {
		return fmt.Errorf("maildir: index: %w", err)
	}
	name := string(b)
	if name == "" || name != filepath.Base(name) || strings.ContainsAny(name, `/\:`) || name[0] == '.' {
		return fmt.Errorf("maildir: index entry %s is corrupt", filepath.Base(index))
	}
	err = os.Rename(filepath.Join(md.dir, "tmp", name), filepath.Join(md.dir, "new", name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("maildir: deliver: %w", err)
	}
	return syncDir(filepath.Join(md.dir, "new"))
}

// writeFile creates path (which must not exist), fills it with write and
// syncs it, so that what is renamed or linked into place is complete on disk.
func writeFile(path string, write func(*os.File) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
