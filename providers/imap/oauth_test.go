package imap_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/imap/fakecloud"
	"github.com/mailferry/mailferry/providers/imap/imaptest"
)

// queueTokens hands out its tokens in order, one more each time the last
// was refused, and counts the calls.
type queueTokens struct {
	mu      sync.Mutex
	tokens  []string
	next    int
	calls   int
	refused []providers.Secret
}

func (q *queueTokens) Token(_ context.Context, refused providers.Secret) (providers.Secret, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if refused != "" {
		q.refused = append(q.refused, refused)
		q.next++
	}
	if q.next >= len(q.tokens) {
		return "", errors.New("no more tokens")
	}
	return providers.Secret(q.tokens[q.next]), nil
}

func cloudConfig(c *fakecloud.Cloud, user string, ts providers.TokenSource, mech string) imap.Config {
	return imap.Config{
		Endpoint: imap.Endpoint{Security: imap.Plain, Host: "127.0.0.1", Port: c.Port()},
		User:     user, Token: ts, OAuthMech: mech, Timeout: 10 * time.Second,
	}
}

func TestOAuthLogins(t *testing.T) {
	for _, c := range []struct {
		flavor fakecloud.Flavor
		mech   string
	}{
		{fakecloud.Office365, imap.OAuthAuto}, // XOAUTH2: all it offers
		{fakecloud.Gmail, imap.OAuthAuto},     // OAUTHBEARER
		{fakecloud.Gmail, imap.OAuthXOAUTH2},
	} {
		t.Run(c.flavor.String()+"/"+cmp.Or(c.mech, "auto"), func(t *testing.T) {
			cloud := fakecloud.Start(t, fakecloud.Options{Flavor: c.flavor})
			cloud.AddUser("alice@example.com")
			ts := &queueTokens{tokens: []string{cloud.IssueToken("alice@example.com")}}
			s, err := imap.Open(context.Background(), cloudConfig(cloud, "alice@example.com", ts, c.mech))
			if err != nil {
				t.Fatalf("Open with a valid token: %v", err)
			}
			defer s.Close()
			boxes, err := s.Mailboxes(context.Background())
			if err != nil || len(boxes) < 5 {
				t.Fatalf("Mailboxes: %v, %v", boxes, err)
			}
			if st := cloud.Stats(); st.AuthOK != 1 || st.AuthFailed != 0 {
				t.Errorf("server saw %+v, want one good login", st)
			}
		})
	}
}

func TestOAuthRefusedTokenIsReplacedOnce(t *testing.T) {
	for _, flavor := range []fakecloud.Flavor{fakecloud.Office365, fakecloud.Gmail} {
		t.Run(flavor.String(), func(t *testing.T) {
			cloud := fakecloud.Start(t, fakecloud.Options{Flavor: flavor})
			cloud.AddUser("bob@example.com")
			cloud.AddUser("someone-else@example.com")
			stale := cloud.IssueToken("bob@example.com")
			cloud.Expire(stale)
			ts := &queueTokens{tokens: []string{stale, cloud.IssueToken("bob@example.com")}}
			s, err := imap.Open(context.Background(), cloudConfig(cloud, "bob@example.com", ts, imap.OAuthAuto))
			if err != nil {
				t.Fatalf("Open after one expired token: %v", err)
			}
			s.Close()
			if len(ts.refused) != 1 || string(ts.refused[0]) != stale {
				t.Errorf("refused %d token(s), want the stale one once", len(ts.refused))
			}

			// Tokens that are all bad: the account fails, once, with the
			// server's reply and without the token.
			bad1, bad2 := cloud.IssueToken("someone-else@example.com"), cloud.IssueToken("bob@example.com")
			cloud.Expire(bad2)
			ts = &queueTokens{tokens: []string{bad1, bad2, cloud.IssueToken("bob@example.com")}}
			_, err = imap.Open(context.Background(), cloudConfig(cloud, "bob@example.com", ts, imap.OAuthAuto))
			if err == nil {
				t.Fatal("Open with two bad tokens succeeded")
			}
			if providers.ClassOf(err) != providers.ClassAccount {
				t.Errorf("class %v, want account: %v", providers.ClassOf(err), err)
			}
			for _, tok := range []string{bad1, bad2} {
				if strings.Contains(err.Error(), tok) {
					t.Errorf("error shows a token: %v", err)
				}
			}
			if len(ts.refused) != 1 {
				t.Errorf("%d replacement(s), want exactly one per login", len(ts.refused))
			}
		})
	}
}

func TestOAuthNeedsAnOfferedMechanism(t *testing.T) {
	cloud := fakecloud.Start(t, fakecloud.Options{Flavor: fakecloud.Office365})
	cloud.AddUser("carol@example.com")
	ts := &queueTokens{tokens: []string{cloud.IssueToken("carol@example.com")}}
	_, err := imap.Open(context.Background(), cloudConfig(cloud, "carol@example.com", ts, imap.OAuthOAUTHBEARER))
	if err == nil || !strings.Contains(err.Error(), "OAUTHBEARER") || providers.ClassOf(err) != providers.ClassAccount {
		t.Errorf("OAUTHBEARER against a server without it: %v (class %v)", err, providers.ClassOf(err))
	}
}

func TestPasswordRefusedByCloud(t *testing.T) {
	cloud := fakecloud.Start(t, fakecloud.Options{Flavor: fakecloud.Office365})
	cloud.AddUser("dave@example.com")
	_, err := imap.Open(context.Background(), imap.Config{
		Endpoint: imap.Endpoint{Security: imap.Plain, Host: "127.0.0.1", Port: cloud.Port()},
		User:     "dave@example.com", Password: "a password", Timeout: 10 * time.Second,
	})
	if err == nil || providers.ClassOf(err) != providers.ClassAccount {
		t.Errorf("password login to the cloud: %v (class %v), want an account error", err, providers.ClassOf(err))
	}
}

// TestOAuthWithMultiAppend: on a server that offers MULTIAPPEND and takes
// OAuth only (real Dovecot behind imaptest's OAuth gateway), the store
// logs in once, with the token, and its appends borrow that connection:
// none sends LOGIN (with an empty password, once per mailbox, as the
// appender once did), and the messages go as MULTIAPPEND.
func TestOAuthWithMultiAppend(t *testing.T) {
	d := imaptest.StartDovecot(t, imaptest.DovecotOptions{Users: map[string]string{"alice": "pw-alice"}})
	p := imaptest.StartFaultProxy(t, d.Addr())
	p.OAuthGateway(map[string]string{"tok-alice": "pw-alice"})
	ts := &queueTokens{tokens: []string{"tok-alice"}}
	st, err := imap.Open(context.Background(), imap.Config{Endpoint: imap.Endpoint{Security: imap.Plain, Host: p.Host, Port: p.Port},
		User: "alice", Token: ts, OAuthMech: imap.OAuthXOAUTH2, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, box := range []string{"Work", "Home"} {
		if err := st.CreateMailbox(context.Background(), box, ""); err != nil {
			t.Fatal(err)
		}
		mb, err := st.Mailbox(context.Background(), box)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 30 {
			raw := []byte(fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%s.%d@x>\r\n\r\nbody\r\n", box, i, box, i))
			if err := mb.Append(context.Background(), bytes.NewReader(raw), int64(len(raw)), providers.MessageInfo{}, func(_ providers.UID, err error) {
				if err != nil {
					t.Errorf("append: %v", err)
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := mb.Close(); err != nil {
			t.Fatal(err)
		}
		if n := len(d.Messages(t, "alice", box)); n != 30 {
			t.Errorf("%s holds %d messages, want 30", box, n)
		}
	}
	s := p.Stats()
	if s.Commands["LOGIN"] != 0 || s.OAuthLogins != 1 {
		t.Errorf("client LOGINs %d, OAuth logins %d: want one login, on the token, for reading and appending", s.Commands["LOGIN"], s.OAuthLogins)
	}
	if s.AppendLiterals != 60 || s.Appends >= 60 {
		t.Errorf("%d APPEND commands for %d messages: want MULTIAPPEND", s.Appends, s.AppendLiterals)
	}
}
