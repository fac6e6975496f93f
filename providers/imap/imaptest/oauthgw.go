package imaptest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
)

// OAuthGateway makes a FaultProxy offer SASL XOAUTH2 in front of a server
// that takes passwords only: an AUTHENTICATE XOAUTH2 with one of tokens
// (token -> the user's password) is forwarded as that user's LOGIN. Real
// Dovecot, with MULTIAPPEND and the rest, then stands for a cloud that
// takes only OAuth. The client's own LOGIN commands are counted
// (ProxyStats.Commands["LOGIN"]); those the gateway makes are not.
func (p *FaultProxy) OAuthGateway(tokens map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.oauth = tokens
}

// gatewayLogin turns an AUTHENTICATE XOAUTH2 line with its initial
// response into a LOGIN line; ok is false for any other line. A bad
// token becomes a LOGIN the server refuses.
func (p *FaultProxy) gatewayLogin(line []byte) (login []byte, ok bool) {
	p.mu.Lock()
	tokens := p.oauth
	p.mu.Unlock()
	f := strings.Fields(string(bytes.TrimRight(line, "\r\n")))
	if tokens == nil || len(f) != 4 || !strings.EqualFold(f[1], "AUTHENTICATE") || !strings.EqualFold(f[2], "XOAUTH2") {
		return nil, false
	}
	raw, err := base64.StdEncoding.DecodeString(f[3])
	if err != nil {
		return nil, false
	}
	var user, token string
	for _, kv := range strings.Split(string(raw), "\x01") {
		if v, ok := strings.CutPrefix(kv, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(kv, "auth=Bearer "); ok {
			token = v
		}
	}
	pass, known := tokens[token]
	if !known {
		pass = "\x01no such token"
	}
	p.mu.Lock()
	p.stats.OAuthLogins++
	p.mu.Unlock()
	quote := func(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` }
	return fmt.Appendf(nil, "%s LOGIN %s %s\r\n", f[0], quote(user), quote(pass)), true
}

// addsXOAUTH2 adds AUTH=XOAUTH2 to a capability list the gateway passes.
func (p *FaultProxy) addsXOAUTH2(line []byte) []byte {
	p.mu.Lock()
	on := p.oauth != nil
	p.mu.Unlock()
	i := bytes.Index(bytes.ToUpper(line), []byte("CAPABILITY IMAP4REV1"))
	if !on || i < 0 {
		return line
	}
	at := i + len("CAPABILITY IMAP4REV1")
	return append(append(append([]byte(nil), line[:at]...), " AUTH=XOAUTH2"...), line[at:]...)
}
