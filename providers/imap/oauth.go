package imap

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/providers"
)

// SASL mechanisms for OAuth 2.0 bearer tokens. OAuthAuto takes
// OAUTHBEARER (RFC 7628) where the server offers it, else XOAUTH2, which
// is all Microsoft 365 offers.
const (
	OAuthAuto        = ""
	OAuthXOAUTH2     = "XOAUTH2"
	OAuthOAUTHBEARER = sasl.OAuthBearer
)

// oauthMech picks the mechanism the server offers.
func oauthMech(want string, caps goimap.CapSet) (string, error) {
	offers := func(m string) bool { return caps.Has(goimap.AuthCap(m)) }
	switch {
	case want != OAuthAuto && offers(want):
		return want, nil
	case want != OAuthAuto:
		return "", providers.WithClass(providers.ClassAccount, fmt.Errorf("server offers no AUTHENTICATE %s", want))
	case offers(OAuthOAUTHBEARER):
		return OAuthOAUTHBEARER, nil
	case offers(OAuthXOAUTH2):
		return OAuthXOAUTH2, nil
	}
	return "", providers.WithClass(providers.ClassAccount, errors.New("server offers neither AUTHENTICATE OAUTHBEARER nor XOAUTH2: log in with a password instead"))
}

// newOAuthClient is the SASL client of mech for the account's token.
func newOAuthClient(mech string, s *Store, token providers.Secret) oauthClient {
	if mech == OAuthXOAUTH2 {
		return &xoauth2Client{user: s.cfg.User, token: token}
	}
	return &oauthBearerClient{inner: sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
		Username: s.cfg.User, Token: string(token), Host: s.cfg.Endpoint.Host, Port: s.cfg.Endpoint.Port})}
}

type oauthClient interface {
	sasl.Client
	detail() string // what the server's error challenge said, if any
}

// xoauth2Client is Google's and Microsoft's XOAUTH2, which go-sasl lacks.
// On a bad token the server sends a JSON challenge and expects an empty
// response before its NO.
type xoauth2Client struct {
	user      string
	token     providers.Secret
	challenge []byte
}

func (x *xoauth2Client) Start() (string, []byte, error) {
	return OAuthXOAUTH2, []byte("user=" + x.user + "\x01auth=Bearer " + string(x.token) + "\x01\x01"), nil
}

func (x *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	x.challenge = challenge
	return []byte{}, nil
}

func (x *xoauth2Client) detail() string { return challengeDetail(x.challenge) }

// oauthBearerClient wraps go-sasl's OAUTHBEARER client, whose Next returns
// an error on the server's error challenge: go-imap then gives up without
// answering, and the server is left waiting in the exchange. RFC 7628
// §3.2.3 says the client answers with a single 0x01, and the server then
// ends the command with NO.
type oauthBearerClient struct {
	inner     sasl.Client
	challenge []byte
}

func (o *oauthBearerClient) Start() (string, []byte, error) { return o.inner.Start() }

func (o *oauthBearerClient) Next(challenge []byte) ([]byte, error) {
	o.challenge = challenge
	return []byte{0x01}, nil
}

func (o *oauthBearerClient) detail() string { return challengeDetail(o.challenge) }

// challengeDetail summarises the servers' JSON error challenge,
// {"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}.
func challengeDetail(ch []byte) string {
	if len(ch) == 0 {
		return ""
	}
	var e sasl.OAuthBearerError
	if json.Unmarshal(ch, &e) != nil || e.Status == "" {
		return ""
	}
	parts := []string{"status " + e.Status}
	if e.Scope != "" {
		parts = append(parts, "scope "+e.Scope)
	}
	return strings.Join(parts, ", ")
}

// tokenRefusedError marks a login the server refused with a bearer token:
// the token may have expired, so one fresh token is worth a try.
type tokenRefusedError struct{ err error }

func (e *tokenRefusedError) Error() string { return e.err.Error() }
func (e *tokenRefusedError) Unwrap() error { return e.err }

// refusedToken reports whether err is the server turning a token down, as
// opposed to being busy or unreachable.
func refusedToken(err error) bool {
	var te *tokenRefusedError
	if !errors.As(err, &te) {
		return false
	}
	var ie *goimap.Error
	if !errors.As(err, &ie) {
		return false
	}
	return ie.Type != goimap.StatusResponseTypeBye && !isThrottle(ie)
}
