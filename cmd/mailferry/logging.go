package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// readableAttr shows ledger keys (two users joined by a NUL) as
// "alice -> bob" in log lines.
func readableAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindString && strings.ContainsRune(a.Value.String(), 0) {
		a.Value = slog.StringValue(accountLabel(a.Value.String()))
	}
	return a
}

// accountLogs is --log-dir: one log file per account, named after the
// source user, like imapsync's per-user logs. Each file gets the log lines
// about its account and the account's progress (mailboxes done, the
// account's end), whatever the output mode. The files are opened as the
// accounts start, with mode 0600: they name users and folders.
type accountLogs struct {
	dir   string
	level slog.Level

	mu    sync.Mutex
	files map[string]*os.File
	logs  map[string]*slog.Logger
	err   error // the first file that could not be written
}

func newAccountLogs(dir string, level slog.Level) (*accountLogs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, usagef("--log-dir: %v", err)
	}
	return &accountLogs{dir: dir, level: min(level, slog.LevelInfo), files: map[string]*os.File{}, logs: map[string]*slog.Logger{}}, nil
}

// logFileName makes a source user a file name: what is not a letter,
// digit, '.', '-', '_' or '@' becomes '_'.
func logFileName(user string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '@':
			return r
		}
		return '_'
	}, strings.ToLower(user))
	if strings.Trim(name, ".") == "" {
		name = "_" + name
	}
	return name + ".log"
}

// user returns the logger of one account's file, nil if it cannot be
// opened (the first such error is reported at the end of the run).
func (l *accountLogs) user(user string) *slog.Logger {
	if user == "" {
		return nil
	}
	name := logFileName(user)
	l.mu.Lock()
	defer l.mu.Unlock()
	if lg, ok := l.logs[name]; ok {
		return lg
	}
	f, err := os.OpenFile(filepath.Join(l.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		if l.err == nil {
			l.err = fmt.Errorf("--log-dir: %w", err)
		}
		l.logs[name] = nil
		return nil
	}
	l.files[name] = f
	lg := slog.New(slog.NewTextHandler(&cleanWriter{w: f}, &slog.HandlerOptions{Level: l.level, ReplaceAttr: readableAttr}))
	l.logs[name] = lg
	return lg
}

func (l *accountLogs) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		if err := f.Close(); err != nil && l.err == nil {
			l.err = fmt.Errorf("--log-dir: %w", err)
		}
	}
	l.files = map[string]*os.File{}
	return l.err
}

// teeHandler sends every record to the main handler, and those about an
// account (an "account" or "source_user" attribute) to its file as well.
type teeHandler struct {
	main  slog.Handler
	logs  *accountLogs
	attrs []slog.Attr
}

func (h *teeHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	return h.main.Enabled(ctx, lvl) || lvl >= h.logs.level
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.main.Enabled(ctx, r.Level) {
		err = h.main.Handle(ctx, r)
	}
	if r.Level < h.logs.level {
		return err
	}
	user := ""
	find := func(a slog.Attr) bool {
		if a.Key == "account" || a.Key == "source_user" {
			user, _, _ = strings.Cut(strings.TrimPrefix(a.Value.String(), "reverse\x00"), "\x00")
			return false
		}
		return true
	}
	for _, a := range h.attrs {
		find(a)
	}
	r.Attrs(find)
	if lg := h.logs.user(user); lg != nil {
		_ = lg.Handler().WithAttrs(h.attrs).Handle(ctx, r.Clone())
	}
	return err
}

func (h *teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &teeHandler{main: h.main.WithAttrs(attrs), logs: h.logs, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	// Groups are not used by mailferry's loggers; keep the account lookup
	// on the top-level attributes.
	return &teeHandler{main: h.main.WithGroup(name), logs: h.logs, attrs: h.attrs}
}

// newLogger is the run's logger: log lines on stderr at lvl, and with
// --log-dir one file per account as well.
func newLogger(w io.Writer, lvl slog.Level, logs *accountLogs) *slog.Logger {
	var h slog.Handler = slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: readableAttr})
	if logs != nil {
		h = &teeHandler{main: h, logs: logs}
	}
	return slog.New(h)
}
