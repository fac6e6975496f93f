package migrate

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mailferry/mailferry/providers"
)

// Selection narrows a run to some mailboxes and messages, as the admin's
// folder rules and filters say. The zero Selection takes everything.
type Selection struct {
	// Include, if not empty, copies only the source mailboxes whose whole
	// canonical name ('/'-separated) one of them matches; Exclude then
	// leaves out those one of its patterns matches.
	Include []*regexp.Regexp
	Exclude []*regexp.Regexp
	// Skip leaves out source mailboxes a server preset says hold no mail,
	// unless Include names them.
	Skip []SkipRule
	// Map renames source mailboxes on the destination, first match wins.
	Map []FolderMap
	// Filter selects the messages of each mailbox by date and size.
	Filter providers.Filter
}

// FolderMap sends the source mailbox From, and every mailbox under it, to
// To on the destination: with Work=Archive/Work, Work/2024 goes to
// Archive/Work/2024.
type FolderMap struct{ From, To string }

// ParseFolderMap reads FROM=TO.
func ParseFolderMap(s string) (FolderMap, error) {
	from, to, ok := strings.Cut(s, "=")
	from, to = strings.Trim(strings.TrimSpace(from), "/"), strings.Trim(strings.TrimSpace(to), "/")
	if !ok || from == "" || to == "" {
		return FolderMap{}, fmt.Errorf("folder mapping %q: want SOURCE=DESTINATION, e.g. 'Sent Items=Sent'", s)
	}
	return FolderMap{From: from, To: to}, nil
}

// CompileFolderPattern compiles a pattern that must match a whole mailbox
// name, so that "Trash" leaves out Trash but not Projects/Trash-talk.
func CompileFolderPattern(p string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		return nil, fmt.Errorf("folder pattern %q: %w", p, err)
	}
	return re, nil
}

// SkipRule leaves out the source mailboxes Pattern matches, for Reason.
type SkipRule struct {
	Pattern *regexp.Regexp
	Reason  string
}

// skips says why the selection leaves out a source mailbox, or "".
func (s Selection) skips(name string) string {
	included := matchesAny(s.Include, name)
	if len(s.Include) > 0 && !included {
		return "not matched by --include"
	}
	if matchesAny(s.Exclude, name) {
		return "excluded by --exclude"
	}
	if !included {
		for _, r := range s.Skip {
			if r.Pattern.MatchString(name) {
				return r.Reason
			}
		}
	}
	return ""
}

func matchesAny(res []*regexp.Regexp, name string) bool {
	for _, re := range res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// mapped is the destination a folder mapping gives name, if any.
func (s Selection) mapped(name string) (string, bool) {
	for _, m := range s.Map {
		if name == m.From {
			return m.To, true
		}
		if rest, ok := strings.CutPrefix(name, m.From+"/"); ok {
			return m.To + "/" + rest, true
		}
	}
	return "", false
}
