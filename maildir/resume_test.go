package maildir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/eventflow/eventflow/notifications"
	"github.com/eventflow/eventflow/smtp"
)

// A crash after the index entry was made and before the rename into new/
// leaves the message in tmp/; the retry must deliver that one, not a second.
func TestRetryFinishesInterruptedDelivery(t *testing.T) {
	dir := t.TempDir()
	md, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := notifications.Email{
		From: "noreply@eventflow.test", To: "ann@example.test", Subject: "interrupted",
		Text: "hello\n", MessageID: "interrupted@eventflow.test",
	}
	msg, err := smtp.BuildMessage(e)
	if err != nil {
		t.Fatal(err)
	}
	name := md.uniqueName()
	if err := writeFile(filepath.Join(dir, "tmp", name), func(f *os.File) error { _, err := msg.WriteTo(f); return err }); err != nil {
		t.Fatal(err)
	}
	if won, err := md.claim(md.indexPath(e.MessageID), name); err != nil || !won {
		t.Fatalf("claim = %v, %v", won, err)
	}
	if msgs, err := Read(dir); err != nil || len(msgs) != 0 {
		t.Fatalf("before the retry: %d messages, %v", len(msgs), err)
	}

	if err := md.SendEmail(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	msgs, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Path != filepath.Join(dir, "new", name) {
		t.Fatalf("after the retry: %d messages, want the interrupted one in new/", len(msgs))
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Errorf("tmp/ still holds %d files", len(left))
	}
}

func TestCorruptIndexEntryIsAnError(t *testing.T) {
	dir := t.TempDir()
	md, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := notifications.Email{From: "a@eventflow.test", To: "b@example.test", MessageID: "c@eventflow.test"}
	if err := os.WriteFile(md.indexPath(e.MessageID), []byte("../../etc/passwd"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := md.SendEmail(t.Context(), e); err == nil || notifications.IsPermanent(err) {
		t.Errorf("got %v, want a temporary error for a corrupt index entry", err)
	}
}
