package maildir

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Subscriptions are read from Dovecot's "subscriptions" file in the root
// and Courier's "courierimapsubscribed", and written to Dovecot's.
// Dovecot 2.3's file is "V\t2\n\n" and then one name per line, its levels
// stored as folder directories name them and joined with a tab (older
// files: no header, levels joined with the layout's separator). Courier's
// names are full IMAP names in its "INBOX." namespace, '.'-separated.
const (
	dovecotSubscriptions = "subscriptions"
	courierSubscriptions = "courierimapsubscribed"
	subscriptionsV2      = "V\t2\n\n"
)

// readSubscriptions returns the subscribed canonical names.
func (s *Store) readSubscriptions() (map[string]bool, error) {
	out := map[string]bool{}
	b, err := os.ReadFile(filepath.Join(s.root, dovecotSubscriptions))
	switch {
	case err == nil:
		v2 := bytes.HasPrefix(b, []byte(subscriptionsV2))
		sep := "."
		if s.layout == LayoutFS {
			sep = "/"
		}
		if v2 {
			b, sep = b[len(subscriptionsV2):], "\t"
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if line != "" {
				out[s.decodeName(strings.Split(line, sep))] = true
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	b, err = os.ReadFile(filepath.Join(s.root, courierSubscriptions))
	switch {
	case err == nil:
		for line := range strings.SplitSeq(string(b), "\n") {
			if line == "" {
				continue
			}
			if strings.EqualFold(line, "INBOX") {
				out["INBOX"] = true
				continue
			}
			if len(line) > len("INBOX.") && strings.EqualFold(line[:len("INBOX.")], "INBOX.") {
				line = line[len("INBOX."):]
			}
			out[s.decodeName(strings.Split(line, "."))] = true
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return out, nil
}

func (s *Store) decodeName(levels []string) string {
	for i, l := range levels {
		levels[i], _ = decodeLevel(l, s.opts.UTF8Names)
	}
	return canonical(strings.Join(levels, "/"))
}

// subscribed reports whether name is subscribed, as of the last
// Mailboxes or Subscribe.
func (s *Store) subscribed(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[name]
}

// Subscribe implements providers.Subscriber: it adds name to Dovecot's
// subscriptions file, under Dovecot's lock for it.
func (s *Store) Subscribe(ctx context.Context, name string) error {
	name, err := s.writeName(ctx, "subscribe", name)
	if err != nil {
		return err
	}
	if _, err := s.folderOf("subscribe", name); err != nil {
		return err
	}
	path := filepath.Join(s.root, dovecotSubscriptions)
	lock, err := takeLock(ctx, path)
	if err != nil {
		return classify("subscribe "+name, err)
	}
	defer lock.release()
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return classify("subscribe "+name, err)
	}
	levels := strings.Split(name, "/")
	for i, l := range levels {
		levels[i] = encodeLevel(l, s.layout, s.opts.UTF8Names)
	}
	line := strings.Join(levels, "\t")
	var b bytes.Buffer
	b.WriteString(subscriptionsV2)
	rest := old
	if bytes.HasPrefix(old, []byte(subscriptionsV2)) {
		rest = old[len(subscriptionsV2):]
	} else if len(old) > 0 {
		// An old-style file: rewrite its lines in the version 2 form.
		var conv []string
		sep := "."
		if s.layout == LayoutFS {
			sep = "/"
		}
		for l := range strings.SplitSeq(string(old), "\n") {
			if l != "" {
				conv = append(conv, strings.ReplaceAll(l, sep, "\t"))
			}
		}
		rest = []byte(strings.Join(conv, "\n") + "\n")
	}
	for l := range strings.SplitSeq(string(rest), "\n") {
		if l == line {
			s.setSubscribed(name)
			return nil
		}
	}
	b.Write(rest)
	if len(rest) > 0 && !bytes.HasSuffix(rest, []byte("\n")) {
		b.WriteByte('\n')
	}
	b.WriteString(line + "\n")
	tmp := path + ".tmp"
	if err := writeSynced(tmp, b.Bytes(), time.Time{}); err != nil {
		os.Remove(tmp)
		return classify("subscribe "+name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return classify("subscribe "+name, err)
	}
	s.setSubscribed(name)
	return nil
}

func (s *Store) setSubscribed(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs == nil {
		s.subs = map[string]bool{}
	}
	s.subs[name] = true
}
