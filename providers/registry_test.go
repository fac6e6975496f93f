package providers

import (
	"strings"
	"testing"
)

func testRegistration(name string, schemes ...string) Registration {
	return Registration{Name: name, Schemes: schemes, Usage: name + ":X",
		New: func(string, Values) (Endpoint, error) { return nil, nil }}
}

func TestRegistryLookup(t *testing.T) {
	r := NewRegistry(testRegistration("net", "net", "net+plain"), testRegistration("dir", "dir"))
	for loc, want := range map[string]string{"net://u@h": "net", "NET+Plain://h:1": "net", "dir:/a:b": "dir", "DIR:rel": "dir"} {
		reg, err := r.Lookup(loc)
		if err != nil || reg.Name != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", loc, reg, err, want)
		}
	}
	for _, loc := range []string{"alice@example.com", "alice:secret@host", "//alice:secret@host", ":x", "9p:x"} {
		_, err := r.Lookup(loc)
		if err == nil {
			t.Errorf("Lookup(%q): no error", loc)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Lookup(%q) shows the password: %v", loc, err)
		}
		if !strings.Contains(err.Error(), "net:X, or dir:X") {
			t.Errorf("Lookup(%q): %v; want the forms listed", loc, err)
		}
	}
}

func TestRegistryRefusesDuplicates(t *testing.T) {
	for name, regs := range map[string][]Registration{
		"scheme": {testRegistration("a", "x"), testRegistration("b", "x")},
		"option": {
			func() Registration {
				r := testRegistration("a", "a")
				r.Options = []Option{{Name: "o", Help: "one"}}
				return r
			}(),
			func() Registration {
				r := testRegistration("b", "b")
				r.Options = []Option{{Name: "o", Help: "two"}}
				return r
			}(),
		},
		"no New": {{Name: "a", Schemes: []string{"a"}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: NewRegistry did not panic", name)
				}
			}()
			NewRegistry(regs...)
		}()
	}
	// The same option, meaning the same, may be shared.
	shared := Option{Name: "timeout", Kind: KindDuration, Help: "t"}
	a, b := testRegistration("a", "a"), testRegistration("b", "b")
	a.Options, b.Options = []Option{shared}, []Option{shared}
	if opts := NewRegistry(a, b).Options(); len(opts) != 1 {
		t.Errorf("shared option listed %d times", len(opts))
	}
}

func TestValues(t *testing.T) {
	var v Values
	v.Set("b", "true", "--from-b", true)
	v.Set("d", "90s", "--d", false)
	if !v.Bool("b") || v.Duration("d").Seconds() != 90 || v.String("none") != "" || v.Flag("none") != "--none" || !v.FromSide("b") || v.FromSide("d") {
		t.Errorf("Values: %+v", v)
	}
}
