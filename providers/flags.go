package providers

import (
	"slices"
	"strings"
)

// AppendFlags returns the flags a store keeps for a message appended with
// flags: without \Recent, which no store sets on request, without empty
// flags, and each flag once (compared without regard to case, the first
// spelling kept).
func AppendFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if f == "" || strings.EqualFold(f, `\Recent`) || slices.ContainsFunc(out, func(g string) bool { return strings.EqualFold(f, g) }) {
			continue
		}
		out = append(out, f)
	}
	return out
}
