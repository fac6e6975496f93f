package imap

import "testing"

// TestCanonicalInvertsNative: every canonical name a '.' server is given
// (the copier's names, the conformance suite's hostile ones) is listed
// back under the same canonical name, so that what mailferry created is
// recognised again by later runs and by undo. The '.' inside "v1.2
// release" is stored as U+2024 on such a server and must come back as '.'.
func TestCanonicalInvertsNative(t *testing.T) {
	names := []string{"INBOX", "Sent Items", "Work/Projects/2024", "with space", "v1.2 release", "Q&A",
		"Entwürfe/日本", "a.b/c.d", "a∕b", "trailing."}
	for _, ns := range []namespace{{delim: '/'}, {delim: '.'}, {prefix: "INBOX.", delim: '.'}, {prefix: "INBOX/", delim: '/'}} {
		for _, c := range names {
			native := ns.native(c)
			if got := ns.canonical(native); got != c {
				t.Errorf("%+v: canonical %q -> native %q -> canonical %q", ns, c, native, got)
			}
		}
	}
	cyrus := namespace{prefix: "INBOX.", delim: '.'}
	if got := cyrus.native("v1.2 release"); got != "INBOX.v1․2 release" {
		t.Errorf("native(v1.2 release) = %q, want the look-alike U+2024", got)
	}
	// A '/' server keeps U+2024 as it is: there it is just a character.
	if got := (namespace{delim: '/'}).canonical("v1․2"); got != "v1․2" {
		t.Errorf("'/' server: canonical(v1․2) = %q", got)
	}
}
