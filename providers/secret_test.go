package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const pw = "hunter2-s3cr3t"
	s := Secret(pw)
	type cfg struct {
		User     string
		Password Secret
	}
	c := cfg{User: "alice", Password: s}
	var shown []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		shown = append(shown, fmt.Sprintf(verb, s), fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c))
	}
	shown = append(shown, fmt.Sprint(s), fmt.Sprintln(s), s.String(), s.GoString())
	shown = append(shown, fmt.Errorf("login %v: %w", s, errors.New("refused")).Error())
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	shown = append(shown, string(j))
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("login", "password", s, "cfg", c, slog.Any("any", s))
	}
	shown = append(shown, buf.String())
	for _, out := range shown {
		if strings.Contains(out, pw) || strings.Contains(out, fmt.Sprintf("%x", pw)) {
			t.Errorf("secret shown: %s", out)
		}
	}
	if !strings.Contains(string(j), "REDACTED") {
		t.Errorf("JSON %s: want the placeholder", j)
	}
	if string(s) != pw {
		t.Error("string(s) must give the value back")
	}
}
