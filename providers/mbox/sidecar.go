package mbox

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The sidecar NAME.mbox.mailferry keeps what an mbox file cannot hold
// without changing the message bytes: the UIDVALIDITY, each message's UID,
// exact size, flags and internal date. It is JSON lines, appended to as
// messages are appended:
//
//	{"mailferry_mbox":1,"uidvalidity":3735928559}                      header, first line
//	{"uid":1,"off":0,"size":1234,"flags":["\\Seen"],"date":"2019-11-03T14:15:16Z"}
//	{"end":1302,"sha256":"9f86d0…"}                                    checkpoint
//
// A message line describes the message whose From_ line starts at byte off;
// it is written before the message, so a message line whose message is
// missing or shorter is an append that was interrupted. "flags" and "date"
// may be absent: the message's headers and From_ line then say. A checkpoint
// says the first end bytes of the mbox file have that sha256: the sidecar
// describes the file only while every checkpoint holds, so a file another
// program rewrote is noticed, and then the sidecar is ignored.
const sidecarVersion = 1

// sideLine is one line of a sidecar; which fields are set says what it is.
type sideLine struct {
	Version     *int      `json:"mailferry_mbox,omitempty"`
	UIDValidity uint32    `json:"uidvalidity,omitempty"`
	UID         uint32    `json:"uid,omitempty"`
	Off         *int64    `json:"off,omitempty"`
	Size        *int64    `json:"size,omitempty"`
	Flags       *[]string `json:"flags,omitempty"`
	Date        string    `json:"date,omitempty"`
	End         *int64    `json:"end,omitempty"`
	SHA256      string    `json:"sha256,omitempty"`
}

// sideRecord is a message line.
type sideRecord struct {
	uid   uint32
	off   int64
	size  int64
	flags []string // nil when absent
	date  time.Time
	has   struct{ flags, date bool }
}

// sideCheckpoint is a checkpoint line.
type sideCheckpoint struct {
	end int64
	sum []byte
}

// sidecar is a sidecar as read.
type sidecar struct {
	validity    uint32
	records     []sideRecord
	checkpoints []sideCheckpoint
}

// readSidecar reads path. A missing file gives nil and no error. A line
// that does not parse ends the reading there (an interrupted write leaves
// at most a torn last line) and is reported.
func readSidecar(path string) (*sidecar, []Problem, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var problems []Problem
	sc := &sidecar{}
	br := bufio.NewScanner(f)
	br.Buffer(make([]byte, 0, 4096), 1<<20)
	n := int64(0)
	for br.Scan() {
		n++
		var l sideLine
		if err := json.Unmarshal(br.Bytes(), &l); err != nil {
			problems = append(problems, Problem{Path: path, Offset: -1, Line: n, What: fmt.Sprintf("unreadable line ignored with all after it: %v", err)})
			break
		}
		switch {
		case n == 1:
			if l.Version == nil || *l.Version != sidecarVersion || l.UIDValidity == 0 {
				problems = append(problems, Problem{Path: path, Offset: -1, Line: n, What: "not a mailferry sidecar of a version this build knows; ignored"})
				return nil, problems, nil
			}
			sc.validity = l.UIDValidity
		case l.UID != 0 && l.Off != nil && l.Size != nil:
			r := sideRecord{uid: l.UID, off: *l.Off, size: *l.Size}
			if l.Flags != nil {
				r.flags, r.has.flags = *l.Flags, true
			}
			if l.Date != "" {
				t, err := time.Parse(time.RFC3339, l.Date)
				if err == nil {
					r.date, r.has.date = t, true
				}
			}
			sc.records = append(sc.records, r)
		case l.End != nil:
			sum, err := hex.DecodeString(l.SHA256)
			if err != nil || len(sum) == 0 {
				problems = append(problems, Problem{Path: path, Offset: -1, Line: n, What: "checkpoint without a valid sha256; ignored with all after it"})
				return sc, problems, nil
			}
			sc.checkpoints = append(sc.checkpoints, sideCheckpoint{end: *l.End, sum: sum})
		default:
			problems = append(problems, Problem{Path: path, Offset: -1, Line: n, What: "unknown line ignored with all after it"})
			return sc, problems, nil
		}
	}
	if err := br.Err(); err != nil {
		problems = append(problems, Problem{Path: path, Offset: -1, Line: n + 1, What: fmt.Sprintf("unreadable line ignored with all after it: %v", err)})
	}
	if n == 0 {
		return nil, problems, nil
	}
	return sc, problems, nil
}

func headerLine(validity uint32) []byte {
	v := sidecarVersion
	return line(sideLine{Version: &v, UIDValidity: validity})
}

func recordLine(uid uint32, off, size int64, flags []string, date time.Time, withMeta bool) []byte {
	l := sideLine{UID: uid, Off: &off, Size: &size}
	if withMeta {
		if flags == nil {
			flags = []string{}
		}
		l.Flags = &flags
		l.Date = date.Format(time.RFC3339)
	}
	return line(l)
}

func checkpointLine(end int64, sum []byte) []byte {
	return line(sideLine{End: &end, SHA256: hex.EncodeToString(sum)})
}

func line(l sideLine) []byte {
	b, err := json.Marshal(l)
	if err != nil {
		panic(err) // only plain values: cannot happen
	}
	return append(b, '\n')
}

// writeFileAtomic replaces path with what write produces, via a hidden
// temporary file in the same directory, synced before the rename.
func writeFileAtomic(path string, write func(w io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(tmp, bufSize)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
