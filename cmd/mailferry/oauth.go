package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/providers"
)

// tokens hands out OAuth 2.0 access tokens for the accounts of one side:
// either one fixed token from the environment, or the output of the
// admin's token command, run once per account and again when the token
// nears its expiry or the server refuses it. Connections of one account
// share its token, so a batch of 1,100 users runs the command about once
// per user and hour, not once per connection.
type tokens struct {
	side    string // "source" or "destination"
	env     string // where a fixed token came from, for messages
	fixed   providers.Secret
	command string
	now     func() time.Time

	mu    sync.Mutex
	users map[string]*userToken
}

type userToken struct {
	mu      sync.Mutex
	token   providers.Secret
	expires time.Time // zero: unknown, kept until refused
}

// tokenCommandTimeout bounds one run of a token command.
const tokenCommandTimeout = 2 * time.Minute

// renewBefore is how long before its expiry a token is replaced, so that
// no login starts with a token that dies on the way.
const renewBefore = 2 * time.Minute

// forUser is the token source of one account.
func (t *tokens) forUser(user string) providers.TokenSource {
	return accountToken{t, user}
}

type accountToken struct {
	t    *tokens
	user string
}

func (a accountToken) Token(ctx context.Context, refused providers.Secret) (providers.Secret, error) {
	t := a.t
	if t.command == "" {
		if refused != "" && refused == t.fixed {
			return "", providers.WithClass(providers.ClassAccount, fmt.Errorf("the %s server refused the token in $%s (expired, or not for %s?); give a fresh one, or let --%s-oauth-token-cmd renew it", t.side, t.env, a.user, flagSide(t.side)))
		}
		return t.fixed, nil
	}
	t.mu.Lock()
	u := t.users[strings.ToLower(a.user)]
	if u == nil {
		u = &userToken{}
		t.users[strings.ToLower(a.user)] = u
	}
	t.mu.Unlock()

	u.mu.Lock()
	defer u.mu.Unlock()
	fresh := u.expires.IsZero() || t.now().Before(u.expires.Add(-renewBefore))
	if u.token != "" && u.token != refused && fresh {
		return u.token, nil
	}
	tok, expires, err := t.run(ctx, a.user)
	if err != nil {
		return "", err
	}
	if refused != "" && tok == refused {
		return "", providers.WithClass(providers.ClassAccount, fmt.Errorf("the %s token command gave %s the token the server had just refused", t.side, a.user))
	}
	u.token, u.expires = tok, expires
	return tok, nil
}

func flagSide(side string) string {
	if side == "source" {
		return "from"
	}
	return "to"
}

// run runs the token command for user: sh -c COMMAND with the user as $1
// and in $MAILFERRY_OAUTH_USER. Its output is the token, alone on the
// first line or as JSON with access_token and expires_in (or expires_on).
// mailferry's own secrets are kept out of its environment.
func (t *tokens) run(ctx context.Context, user string) (providers.Secret, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, tokenCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", t.command, "mailferry-token", user)
	cmd.Env = append(tokenCommandEnv(os.Environ()), "MAILFERRY_OAUTH_USER="+user, "MAILFERRY_OAUTH_SIDE="+t.side)
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = 64<<10, 4<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	started := t.now()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer after %s", tokenCommandTimeout)
		} else if ctx.Err() != nil {
			return "", time.Time{}, ctx.Err()
		}
		// Its last words say why (a login expired, a missing consent);
		// stdout might hold a token and is never shown.
		return "", time.Time{}, fmt.Errorf("%s token command for %s: %w%s", t.side, user, err, lastLine(stderr.Bytes()))
	}
	tok, expires, err := parseToken(stdout.Bytes(), started)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%s token command for %s: %w", t.side, user, err)
	}
	return tok, expires, nil
}

// tokenCommandEnv is the environment without mailferry's passwords and
// tokens: a token command has no business with them.
func tokenCommandEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "MAILFERRY_") && (strings.HasSuffix(name, "PASSWORD") || strings.HasSuffix(name, "TOKEN")) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if l == "" {
		return ""
	}
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return ": " + l
}

// parseToken reads a token command's output. Without an expiry in JSON,
// a JWT's exp claim tells (Microsoft's tokens are JWTs); else the token
// is kept until a server refuses it.
func parseToken(out []byte, now time.Time) (providers.Secret, time.Time, error) {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "", time.Time{}, errors.New("printed nothing")
	}
	var tok string
	var expires time.Time
	if strings.HasPrefix(s, "{") {
		var j struct {
			AccessToken  string          `json:"access_token"`
			AccessToken2 string          `json:"accessToken"`
			ExpiresIn    json.RawMessage `json:"expires_in"`
			ExpiresOn    json.RawMessage `json:"expires_on"`
			ExpiresOn2   json.RawMessage `json:"expiresOn"`
			ExpiresAt    json.RawMessage `json:"expires_at"`
		}
		if err := json.Unmarshal([]byte(s), &j); err != nil {
			return "", time.Time{}, errors.New("printed JSON that does not parse")
		}
		tok = cmp.Or(j.AccessToken, j.AccessToken2)
		if tok == "" {
			return "", time.Time{}, errors.New("printed JSON without access_token")
		}
		if n, ok := jsonNumber(j.ExpiresIn); ok {
			expires = now.Add(time.Duration(n) * time.Second)
		}
		for _, raw := range []json.RawMessage{j.ExpiresOn, j.ExpiresOn2, j.ExpiresAt} {
			if t, ok := jsonTime(raw); ok && expires.IsZero() {
				expires = t
			}
		}
	} else {
		tok, _, _ = strings.Cut(s, "\n")
		tok = strings.TrimSpace(tok)
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", time.Time{}, errors.New("printed something that is not a token (spaces or control characters)")
	}
	if expires.IsZero() {
		expires = jwtExpiry(tok)
	}
	return providers.Secret(tok), expires, nil
}

func jsonNumber(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n = json.Number(s)
	}
	v, err := n.Int64()
	return v, err == nil && v > 0
}

// jsonTime reads Unix seconds, RFC 3339, or the Azure CLI's local
// "2006-01-02 15:04:05.000000".
func jsonTime(raw json.RawMessage) (time.Time, bool) {
	if n, ok := jsonNumber(raw); ok {
		return time.Unix(n, 0), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// jwtExpiry is the exp claim of a JWT, zero for any other token. The
// signature is not checked: the server does that, this only schedules
// the renewal.
func jwtExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}
	}
	n, err := strconv.ParseInt(string(claims.Exp), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

// limitedBuffer keeps the first max bytes written and drops the rest, so
// a runaway command cannot fill memory.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
