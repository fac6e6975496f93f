package imap

import (
	"errors"
	"io"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/providers"
)

// TestClassifyByCodeBeforeText: an explicit response code decides the
// class; the words of a reply count only when it carries no code.
func TestClassifyByCodeBeforeText(t *testing.T) {
	no := func(code goimap.ResponseCode, text string) error {
		return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: code, Text: text}
	}
	cases := []struct {
		name  string
		err   error
		op    op
		class providers.Class
		after time.Duration
	}{
		{"quota, whatever the text", no(goimap.ResponseCodeOverQuota, "Too many messages in mailbox"), opAppend, providers.ClassAccount, 0},
		{"Gmail's rate limit", no(goimap.ResponseCodeOverQuota, "Account exceeded command or bandwidth limits. (Failure)"), opAppend, providers.ClassTransient, 0},
		{"too big, whatever the text", no(goimap.ResponseCodeTooBig, "try again later with a smaller one"), opAppend, providers.ClassMessage, 0},
		{"unavailable", no(goimap.ResponseCodeUnavailable, "busy"), opAppend, providers.ClassTransient, 0},
		{"limit", no(goimap.ResponseCodeLimit, "slow down"), opOther, providers.ClassTransient, 0},
		{"no code, busy words", no("", "Too many connections from your IP"), opOther, providers.ClassTransient, 0},
		{"Exchange Online's hint", no("", "Request is throttled. Suggested Backoff Time: 190 milliseconds"), opAppend, providers.ClassTransient, 190 * time.Millisecond},
		{"hint in seconds", no(goimap.ResponseCodeUnavailable, "Suggested Backoff Time: 3 seconds"), opOther, providers.ClassTransient, 3 * time.Second},
		{"plain refusal of an append", no("", "message rejected"), opAppend, providers.ClassMessage, 0},
		{"Courier: append to a read-only mailbox", no("", "Current box is selected READ-ONLY."), opAppend, providers.ClassMailbox, 0},
		{"no right to write there", no(goimap.ResponseCodeNoPerm, "denied"), opAppend, providers.ClassMailbox, 0},
		{"Cyrus: no right, in words", no("", "Permission denied"), opAppend, providers.ClassMailbox, 0},
		{"a message-level code wins over words", no(goimap.ResponseCodeParse, "not allowed to contain NUL"), opAppend, providers.ClassMessage, 0},
		{"bye", &goimap.Error{Type: goimap.StatusResponseTypeBye, Text: "shutting down"}, opOther, providers.ClassTransient, 0},
	}
	for _, c := range cases {
		err := classify(c.err, c.op)
		if got := providers.ClassOf(err); got != c.class {
			t.Errorf("%s: class %v, want %v", c.name, got, c.class)
		}
		if got := providers.RetryAfter(err); got != c.after {
			t.Errorf("%s: retry after %v, want %v", c.name, got, c.after)
		}
	}
	// A refused login whose text sounds busy but carries a code is a
	// refusal: retrying a wrong password can lock the account.
	login := classifyLogin(no(goimap.ResponseCodeAuthenticationFailed, "too many failed attempts"))
	if providers.ClassOf(login) != providers.ClassAccount {
		t.Errorf("login refused with [AUTHENTICATIONFAILED]: class %v, want account", providers.ClassOf(login))
	}
	if !errors.Is(login, providers.ErrLoginRefused) {
		t.Errorf("login refused with NO: %v is not ErrLoginRefused", login)
	}
	// A BAD to LOGIN is a server that could not take the command, not a
	// refusal of the password; a dropped connection is neither.
	for _, err := range []error{
		classifyLogin(&goimap.Error{Type: goimap.StatusResponseTypeBad, Text: "unknown command"}),
		classifyLogin(io.ErrUnexpectedEOF),
	} {
		if errors.Is(err, providers.ErrLoginRefused) {
			t.Errorf("%v is ErrLoginRefused, want not", err)
		}
	}
}
