package providers

import (
	"slices"
	"testing"
)

func TestAppendFlags(t *testing.T) {
	got := AppendFlags([]string{`\Seen`, "", `\recent`, `\SEEN`, "$Label1", `\Recent`, "$label1", `\Flagged`})
	want := []string{`\Seen`, "$Label1", `\Flagged`}
	if !slices.Equal(got, want) {
		t.Errorf("AppendFlags = %q, want %q", got, want)
	}
	if got := AppendFlags(nil); got == nil || len(got) != 0 {
		t.Errorf("AppendFlags(nil) = %#v, want an empty slice", got)
	}
}
