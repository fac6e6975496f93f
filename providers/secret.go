package providers

import (
	"fmt"
	"log/slog"
	"strconv"
)

// redacted is what a Secret prints as, whatever the verb or encoder.
const redacted = "REDACTED"

// Secret is a password or token. It prints as a placeholder everywhere
// (fmt with any verb, %#v, slog, JSON, text encoders), so a config dumped
// into a log, an error, a report or a checkpoint leaks nothing. The value
// itself is only had by an explicit conversion, string(s), at the one
// place that sends it to a server. (encoding/json writes a map key of a
// string type as it is: never key a map by a Secret.)
type Secret string

var (
	_ fmt.Stringer   = Secret("")
	_ fmt.GoStringer = Secret("")
	_ fmt.Formatter  = Secret("")
	_ slog.LogValuer = Secret("")
)

func (Secret) String() string   { return redacted }
func (Secret) GoString() string { return redacted }

// Format prints the placeholder for every verb, so that %x or %q cannot
// spell the value out either.
func (Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = f.Write([]byte(strconv.Quote(redacted)))
		return
	}
	_, _ = f.Write([]byte(redacted))
}

func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(redacted)), nil }
