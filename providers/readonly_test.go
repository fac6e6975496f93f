package providers_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/mem"
)

// TestDryRunCounts: what a dry run turned away is counted by kind, each
// refusal says "would", and its class lets a copier go on with the next
// message.
func TestDryRunCounts(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	uid := st.Put("INBOX", []byte("Subject: x\r\n\r\nbody\r\n"), nil, time.Now())
	d := providers.DryRun(st)
	if err := d.CreateMailbox(ctx, "Archive", providers.RoleArchive); !errors.Is(err, providers.ErrDryRun) {
		t.Fatalf("CreateMailbox: %v", err)
	}
	mb, err := d.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	err = mb.Append(ctx, strings.NewReader("12345"), 5, providers.MessageInfo{}, nil)
	var wr *providers.WriteRefused
	if !errors.As(err, &wr) || wr.Op != "append" || wr.Bytes != 5 || !strings.Contains(err.Error(), "would append") {
		t.Errorf("Append: %v", err)
	}
	if c := providers.ClassOf(err); c != providers.ClassMessage {
		t.Errorf("a dry run's refusal has class %v, want message", c)
	}
	fs, _ := providers.As[providers.FlagSetter](d)
	_ = fs.SetFlags(ctx, "INBOX", mb.Info().UIDValidity, map[providers.UID][]string{uid: {`\Seen`}})
	rm, _ := providers.As[providers.Remover](d)
	_ = rm.Remove(ctx, "INBOX", mb.Info().UIDValidity, []providers.UID{uid})
	want := providers.DryRunCounts{Creates: 1, Appends: 1, AppendBytes: 5, FlagSets: 1, Removes: 1}
	if got := d.Counts(); got != want {
		t.Errorf("Counts %+v, want %+v", got, want)
	}
	if n := len(st.Messages("INBOX")); n != 1 || len(st.Names()) != 1 {
		t.Errorf("the store changed: %d messages, mailboxes %v", n, st.Names())
	}
	// A ReadOnly store's refusal stops the account: it is a bug.
	err = providers.ReadOnly(st).CreateMailbox(ctx, "New", "")
	if !errors.Is(err, providers.ErrReadOnly) || errors.Is(err, providers.ErrDryRun) || providers.ClassOf(err) != providers.ClassAccount {
		t.Errorf("ReadOnly CreateMailbox: %v (class %v)", err, providers.ClassOf(err))
	}
	// A type assertion does not see through a wrapper; As does.
	if _, ok := providers.ReadOnly(st).(providers.Statuser); ok {
		t.Error("the wrapper's method set claims Statuser")
	}
	if _, ok := providers.As[providers.Statuser](providers.ReadOnly(st)); !ok {
		t.Error("As does not find the wrapped store's Statuser")
	}
}
