package checkpoint

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a checkpoint file.
type Problem struct {
	// Where names a page ("page 1234") or an entry (`ledger/"alice\x00alice"/messages/"INBOX", record 7:12`).
	Where string `json:"where"`
	What  string `json:"what"`
}

func (p Problem) String() string { return p.Where + ": " + p.What }

// DamageError refuses a damaged checkpoint. It matches ErrDamaged.
type DamageError struct {
	Path string
	Problem
	// Backup is the newest backup beside the file, if there is one.
	Backup string
	// Refused says Open found it, before anything was written; otherwise a
	// read or write of a run met it and the run stops there.
	Refused bool
}

func (e *DamageError) Is(target error) bool { return target == ErrDamaged }

func (e *DamageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s: %s. ", ErrDamaged, e.Where, e.What)
	if e.Refused {
		b.WriteString("Nothing was written to it. ")
	} else {
		b.WriteString("The transaction that met it was rolled back and the run writes nothing more to it. ")
	}
	fmt.Fprintf(&b, "`mailferry checkpoint check %s` lists all the damage; `mailferry checkpoint recover %s --to NEW` copies every record that verifies into NEW, to use as --checkpoint from then on", e.Path, e.Path)
	if e.Backup != "" {
		fmt.Fprintf(&b, "; or restore the newest backup, %s, if `mailferry checkpoint check` passes it", e.Backup)
	}
	return b.String()
}

func damaged(where, format string, args ...any) *DamageError {
	return &DamageError{Problem: Problem{Where: where, What: fmt.Sprintf(format, args...)}}
}

// place is the human name of a bucket: its names from the root.
type place []string

func (p place) child(name []byte) place {
	c := make(place, len(p), len(p)+1)
	copy(c, p)
	if len(p) == 0 || (len(p) == 2 && p[0] == "ledger") {
		return append(c, string(name)) // fixed names: meta, ledger, messages …
	}
	return append(c, strconv.Quote(string(name)))
}

func (p place) String() string {
	if len(p) == 0 {
		return "root bucket"
	}
	return strings.Join(p, "/")
}

// isMessages says the bucket holds message records (ledger/ACCOUNT/messages/MAILBOX).
func (p place) isMessages() bool { return len(p) == 4 && p[0] == "ledger" && p[2] == "messages" }

// entry names one key in the bucket.
func (p place) entry(key []byte) string {
	if p.isMessages() && len(key) == 8 {
		return fmt.Sprintf("%s, record %d:%d", p, binary.BigEndian.Uint32(key), binary.BigEndian.Uint32(key[4:]))
	}
	if len(p) == 1 && p[0] == "runs" && len(key) == 4 {
		return fmt.Sprintf("runs, run %d", binary.BigEndian.Uint32(key))
	}
	return fmt.Sprintf("%s, key %q", p, key)
}
