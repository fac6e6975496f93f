package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/providers"
)

// preset is what mailferry knows of one kind of server: where it is, how
// many connections it allows one account, the largest message it takes,
// and which of its folders hold no mail. docs/clouds.md gives the sources.
type preset struct {
	name string
	// host is the server when the URL names none (imaps, port 993).
	host string
	// oauthOnly: the service refuses passwords over IMAP.
	oauthOnly bool
	// maxConns caps connections per account and side; 0 leaves the flag.
	maxConns int
	// appendLimit is the largest message the server stores, 0 if unknown.
	// A larger message is reported failed without being sent.
	appendLimit int64
	// skip names source folders that are not mail (regular expressions
	// over the '/'-separated name), left out unless --include
	// names them.
	skip []string
	// labels: one message shows in several folders (Gmail).
	labels bool
}

// nonMailFolders are Exchange's calendar, contact and task folders, which
// its IMAP server lists but which hold no messages a mail client can use.
var nonMailFolders = []string{"Calendar(/.*)?", "Contacts(/.*)?", "Tasks(/.*)?", "Journal", "Notes", "Sync Issues(/.*)?"}

// presetNames lists the presets in the order help shows them.
func presetNames() []string {
	return []string{"office365", "gmail", "exchange-onprem", "dovecot", "cyrus"}
}

func lookupPreset(name string) (preset, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "":
		return preset{}, nil
	case "office365", "o365", "m365", "microsoft365":
		// 16 stays under Exchange Online's 20 IMAP connections per
		// mailbox with room for the user's own client; 150 MB is its
		// migration message size limit.
		return preset{name: "office365", host: "outlook.office365.com", oauthOnly: true, maxConns: 16,
			appendLimit: 150 << 20, skip: nonMailFolders}, nil
	case "gmail", "google", "workspace":
		// Gmail allows 15 IMAP connections per account; 25 MB is the
		// largest message it accepts from a client.
		return preset{name: "gmail", host: "imap.gmail.com", maxConns: 15, appendLimit: 25 << 20, labels: true}, nil
	case "exchange-onprem", "exchange":
		// Exchange's IMAP4 service defaults to MaxConnectionsPerUser 16;
		// its public folders are not mail of the user.
		return preset{name: "exchange-onprem", maxConns: 16,
			skip: append(slices.Clone(nonMailFolders), "Public Folders(/.*)?")}, nil
	case "dovecot":
		// mail_max_userip_connections defaults to 10 per user and IP:
		// keep two for the user's own client.
		return preset{name: "dovecot", maxConns: 8}, nil
	case "cyrus":
		return preset{name: "cyrus"}, nil
	}
	return preset{}, usagef("unknown preset %q: want one of %s", name, strings.Join(presetNames(), ", "))
}

// presetURL completes a URL from a preset with a host: "" (a batch),
// a bare user ("alice@example.com") or imaps://user@ without a host all
// mean that server.
func (p preset) presetURL(raw string) string {
	if p.host == "" || isDirLocation(raw) {
		return raw
	}
	if raw == "" {
		return "imaps://" + p.host
	}
	if !strings.Contains(raw, "://") {
		return "imaps://" + strings.ReplaceAll(url.PathEscape(raw), "@", "%40") + "@" + p.host
	}
	if strings.HasSuffix(raw, "@") {
		return raw + p.host
	}
	return raw
}

// isDirLocation reports whether raw is a location of the form SCHEME:PATH
// (mbox:DIR, maildir:DIR), not a server's SCHEME://…: a preset's host
// does not apply to it.
func isDirLocation(raw string) bool {
	scheme, ok := providers.Scheme(raw)
	return ok && !strings.HasPrefix(raw[len(scheme)+1:], "//")
}

// skipRules compiles the preset's folder rules for the source.
func (p preset) skipRules() ([]migrate.SkipRule, error) {
	var out []migrate.SkipRule
	for _, s := range p.skip {
		re, err := migrate.CompileFolderPattern(s)
		if err != nil {
			return nil, fmt.Errorf("preset %s: %w", p.name, err)
		}
		out = append(out, migrate.SkipRule{Pattern: re, Reason: fmt.Sprintf("not mail on %s (--include to copy it)", p.name)})
	}
	return out, nil
}

// caseInsensitive reports servers whose mailbox names ignore case: two
// folders that differ only in case are one there.
func (p preset) caseInsensitive() bool {
	switch p.name {
	case "office365", "gmail", "exchange-onprem":
		return true
	}
	return false
}
