package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
)

func fakeJWT(exp int64) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc(fmt.Appendf(nil, `{"exp":%d,"upn":"a@b"}`, exp)) + ".sig"
}

func TestParseToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	jwt := fakeJWT(now.Unix() + 3600)
	for _, c := range []struct {
		out     string
		token   string
		expires time.Time
	}{
		{"ya29.abc\n", "ya29.abc", time.Time{}},
		{"  ya29.first\nignored second line\n", "ya29.first", time.Time{}},
		{`{"access_token":"tok","expires_in":3599,"token_type":"Bearer"}`, "tok", now.Add(3599 * time.Second)},
		{`{"accessToken":"tok2","expiresOn":"2027-01-15T10:00:00Z"}`, "tok2", time.Date(2027, 1, 15, 10, 0, 0, 0, time.UTC)},
		{`{"access_token":"tok3","expires_on":"1800000600"}`, "tok3", time.Unix(1_800_000_600, 0)},
		{jwt, jwt, now.Add(time.Hour)},
	} {
		tok, exp, err := parseToken([]byte(c.out), now)
		if err != nil || string(tok) != c.token || !exp.Equal(c.expires) {
			t.Errorf("parseToken(%q) = %q, %v, %v; want %q, %v", c.out, tok, exp, err, c.token, c.expires)
		}
	}
	for _, bad := range []string{"", "\n", `{"token_type":"Bearer"}`, `{"access_token":`, "two words"} {
		if tok, _, err := parseToken([]byte(bad), now); err == nil {
			t.Errorf("parseToken(%q) = %q, want an error", bad, tok)
		}
	}
}

// tokenScript writes a token command that counts its runs in a file and
// prints "tok-USER-N", or the expiring JSON form when asked.
func tokenScript(t *testing.T, body string) (cmd, counter string) {
	t.Helper()
	dir := t.TempDir()
	counter = filepath.Join(dir, "runs")
	script := filepath.Join(dir, "token.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nn=$(($(cat "+counter+" 2>/dev/null || echo 0) + 1))\necho $n > "+counter+"\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return script + ` "$1"`, counter
}

func runs(t *testing.T, counter string) int {
	t.Helper()
	b, err := os.ReadFile(counter)
	if err != nil {
		return 0
	}
	var n int
	fmt.Sscan(string(b), &n)
	return n
}

func TestTokenCommandCachesAndRenews(t *testing.T) {
	cmd, counter := tokenScript(t, `echo "{\"access_token\":\"tok-$1-$MAILFERRY_OAUTH_USER-$n\",\"expires_in\":3600}"`)
	now := time.Now()
	ts := &tokens{side: "destination", command: cmd, now: func() time.Time { return now }, users: map[string]*userToken{}}
	ctx := context.Background()
	alice := ts.forUser("alice@example.com")

	tok, err := alice.Token(ctx, "")
	if err != nil || tok != "tok-alice@example.com-alice@example.com-1" {
		t.Fatalf("first token %q, %v", tok, err)
	}
	if again, _ := alice.Token(ctx, ""); again != tok || runs(t, counter) != 1 {
		t.Errorf("second call gave %q after %d runs; want the cached token after 1", again, runs(t, counter))
	}
	// Another connection of the same account (another forUser) shares it.
	if other, _ := ts.forUser("ALICE@example.com").Token(ctx, ""); other != tok {
		t.Errorf("same account, other case: %q, want the cached %q", other, tok)
	}
	// Refused: the command runs again.
	fresh, err := alice.Token(ctx, tok)
	if err != nil || fresh == tok || runs(t, counter) != 2 {
		t.Errorf("after a refusal: %q, %v, %d runs; want a new token from run 2", fresh, err, runs(t, counter))
	}
	// Near its expiry: renewed before use.
	now = now.Add(59 * time.Minute)
	if renewed, _ := alice.Token(ctx, ""); renewed == fresh || runs(t, counter) != 3 {
		t.Errorf("near expiry: %q after %d runs; want a renewal", renewed, runs(t, counter))
	}
	// Each user has their own.
	if bob, _ := ts.forUser("bob").Token(ctx, ""); !strings.HasPrefix(string(bob), "tok-bob-bob-") {
		t.Errorf("bob got %q", bob)
	}
}

func TestTokenCommandFailureKeepsSecrets(t *testing.T) {
	t.Setenv("MAILFERRY_FROM_PASSWORD", "hunter2-password")
	t.Setenv("MAILFERRY_TO_OAUTH_TOKEN", "ya29.leaked-token")
	cmd, _ := tokenScript(t, `echo "ya29.stdout-token-never-shown"; echo "pw=[$MAILFERRY_FROM_PASSWORD] tok=[$MAILFERRY_TO_OAUTH_TOKEN] consent missing for $1" >&2; exit 3`)
	ts := &tokens{side: "source", command: cmd, now: time.Now, users: map[string]*userToken{}}
	_, err := ts.forUser("carol").Token(context.Background(), "")
	if err == nil {
		t.Fatal("a failing token command gave no error")
	}
	msg := err.Error()
	for _, secret := range []string{"hunter2", "leaked-token", "stdout-token"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q shows %q", msg, secret)
		}
	}
	if !strings.Contains(msg, "consent missing for carol") || !strings.Contains(msg, "exit status 3") {
		t.Errorf("error %q does not say what the command said", msg)
	}
}

func TestFixedTokenRefusedOnce(t *testing.T) {
	ts := &tokens{side: "destination", env: "MAILFERRY_TO_OAUTH_TOKEN", fixed: providers.Secret("ya29.fixed"), now: time.Now}
	src := ts.forUser("dave")
	tok, err := src.Token(context.Background(), "")
	if err != nil || tok != "ya29.fixed" {
		t.Fatalf("fixed token: %q, %v", tok, err)
	}
	_, err = src.Token(context.Background(), tok)
	if err == nil || !strings.Contains(err.Error(), "MAILFERRY_TO_OAUTH_TOKEN") || strings.Contains(err.Error(), "ya29.fixed") {
		t.Errorf("refused fixed token: %v; want an error naming the variable, not the token", err)
	}
}

func TestPresets(t *testing.T) {
	o365, err := lookupPreset("office365")
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"":                   "imaps://outlook.office365.com",
		"alice@example.com":  "imaps://alice%40example.com@outlook.office365.com",
		"imaps://bob@":       "imaps://bob@outlook.office365.com",
		"imaps://c@other:99": "imaps://c@other:99",
		"mbox:/tmp/x":        "mbox:/tmp/x",
	} {
		if got := o365.presetURL(raw); got != want {
			t.Errorf("office365 presetURL(%q) = %q, want %q", raw, got, want)
		}
	}
	ep, err := imap.ParseURL(o365.presetURL("alice@example.com"))
	if err != nil || ep.User != "alice@example.com" || ep.Port != 993 || ep.Security != imap.TLS {
		t.Errorf("parsed %+v, %v", ep, err)
	}
	rules, err := o365.skipRules()
	if err != nil {
		t.Fatal(err)
	}
	skipped := func(name string) bool {
		for _, r := range rules {
			if r.Pattern.MatchString(name) {
				return true
			}
		}
		return false
	}
	for name, want := range map[string]bool{"Calendar": true, "Calendar/Birthdays": true, "Contacts": true, "INBOX": false, "Sent Items": false, "Calendars of 2020": false} {
		if skipped(name) != want {
			t.Errorf("office365 skips %q: %v, want %v", name, !want, want)
		}
	}
	if _, err := lookupPreset("yahoo"); err == nil {
		t.Error("an unknown preset was accepted")
	}
	s := &side{opts: &endpointOptions{maxConnectionsPerAccount: 40}, preset: preset{maxConns: 15}}
	if s.maxConns() != 15 {
		t.Errorf("max connections %d, want the preset's 15", s.maxConns())
	}
	s.opts.maxConnectionsPerAccount = 4
	if s.maxConns() != 4 {
		t.Errorf("max connections %d, want the flag's lower 4", s.maxConns())
	}
}
