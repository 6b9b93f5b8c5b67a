package smtp

import (
	"bufio"
	"bytes"
	"net/textproto"
	"testing"

	"github.com/eventflow/eventflow/notifications"
)

// dotEncode returns what goes on the wire for data between DATA and the
// server's reply: through writeData when fast is set, else through
// textproto's DotWriter alone, as go-mail sends it.
func dotEncode(t testing.TB, data []byte, fast bool) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := textproto.NewWriter(bufio.NewWriter(&out))
	dw := tw.DotWriter()
	var err error
	if fast {
		err = writeData(tw.W, dw, data)
	} else {
		_, err = dw.Write(data)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := dw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// FuzzWriteData: writeData puts on the wire exactly what the DotWriter
// would, whatever the data.
//
//	go test ./smtp -run '^$' -fuzz '^FuzzWriteData$' -fuzztime 1m
func FuzzWriteData(f *testing.F) {
	for _, seed := range []string{
		"", "\r\n", ".\r\n", "..\r\n", "a\r\n.\r\n.b\r\n", ".a\r\nb\r\n",
		"no line end", "bare\nlf\r\n", "bare\rcr\r\n", "\r\r\n", "a\r\n\r\n.\r\n\r\n",
		"Subject: x\r\n\r\n.\r\n..\r\n...\r\nend.\r\n", "x\r\n.",
	} {
		f.Add([]byte(seed))
	}
	m, err := BuildMessage(notifications.Email{
		From: "Eventflow <noreply@eventflow.test>", To: "user@example.test", Subject: "Bestellung",
		Text: "Line one\n.starts with a dot\n\n.\nünïcode\n", HTML: "<p>\n.dot</p>",
		MessageID: "d-1@eventflow.test",
	})
	if err != nil {
		f.Fatal(err)
	}
	var rendered bytes.Buffer
	if _, err := m.WriteTo(&rendered); err != nil {
		f.Fatal(err)
	}
	f.Add(rendered.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want := dotEncode(t, data, true), dotEncode(t, data, false)
		if !bytes.Equal(got, want) {
			t.Fatalf("writeData(%q) wrote\n%q\nthe DotWriter\n%q", data, got, want)
		}
	})
}
