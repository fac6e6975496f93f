package mbox

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// parseFromLine reads the date of a From_ line ("From sender date"). The
// sender may be missing or hold spaces ("From John Doe <j@d>", Mailman's
// "From j at d"); the date is what real writers put there (see fromDate).
// Dates without a zone (asctime, the classic form) are taken as UTC.
func parseFromLine(line []byte) (time.Time, bool) {
	line = bytes.TrimRight(line, "\r\n")
	if len(line) > 1024 || !bytes.HasPrefix(line, fromSpace) {
		return time.Time{}, false
	}
	fields := strings.Fields(string(line[len(fromSpace):]))
	// The first start from which the rest reads as a date wins: a sender
	// cannot end in a whole date, but a date can follow any sender.
	for i := 0; i < len(fields) && i <= maxSenderWords; i++ {
		if t, ok := fromDate(fields[i:]); ok {
			return t, true
		}
	}
	return time.Time{}, false
}

// maxSenderWords bounds the words of a sender tried before a date.
const maxSenderWords = 16

// fromDate reads words as the date of a From_ line, all of them:
//
//	[weekday[,]] (month day | day month) then time, year and zone in any
//	order, then an optional "remote from HOST" (UUCP)
//
// with names in any case, full or three letters; the day with or without a
// leading zero; the time with or without seconds; the zone numeric
// (+0100, -05:00, GMT+0100), a name (MET, EST, CEST, "MET DST") or both
// ("-0500 (EST)"). A time and a four-digit year are required.
func fromDate(w []string) (time.Time, bool) {
	i := 0
	if i < len(w) && isName(strings.TrimSuffix(w[i], ","), weekdays) {
		i++
	}
	if i+1 >= len(w) {
		return time.Time{}, false
	}
	var month time.Month
	var day int
	if m, ok := monthOf(w[i]); ok {
		month, day = m, dayOf(w[i+1])
	} else if m, ok := monthOf(strings.TrimSuffix(w[i+1], ",")); ok {
		month, day = m, dayOf(w[i])
	}
	if month == 0 || day == 0 {
		return time.Time{}, false
	}
	i += 2
	year, hour, minute, sec := -1, -1, 0, 0
	offset, hasZone := 0, false
	named := false // a zone name was read: "DST" may follow it
	for ; i < len(w); i++ {
		word := strings.TrimSuffix(w[i], ",")
		switch {
		case strings.EqualFold(word, "remote") && i+1 < len(w) && strings.EqualFold(w[i+1], "from"):
			i = len(w) // the UUCP trailer ends the line
			continue
		case hour < 0 && strings.Contains(word, ":"):
			var ok bool
			if hour, minute, sec, ok = clockOf(word); !ok {
				return time.Time{}, false
			}
		case year < 0 && len(word) == 4 && allDigits(word):
			year, _ = strconv.Atoi(word)
		case named && strings.EqualFold(word, "DST"):
			offset += 3600
			named = false
		default:
			off, isName, ok := zoneOf(word)
			if !ok {
				return time.Time{}, false
			}
			// A numeric zone wins over a name given with it.
			if !hasZone || !isName {
				offset = off
			}
			hasZone, named = true, isName
		}
	}
	if year < 0 || hour < 0 {
		return time.Time{}, false
	}
	t := time.Date(year, month, day, hour, minute, sec, 0, time.FixedZone("", offset))
	if t.Day() != day || t.Hour() != hour { // Feb 30, 24:00
		return time.Time{}, false
	}
	return t.UTC(), true
}

var weekdays = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

var months = []string{"january", "february", "march", "april", "may", "june", "july",
	"august", "september", "october", "november", "december"}

// isName reports whether w is one of names, whole or its first three
// letters, in any case.
func isName(w string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(w, n) || len(w) == 3 && strings.EqualFold(w, n[:3]) {
			return true
		}
	}
	return false
}

func monthOf(w string) (time.Month, bool) {
	for i, n := range months {
		if strings.EqualFold(w, n) || len(w) == 3 && strings.EqualFold(w, n[:3]) || strings.EqualFold(w, "sept") && i == 8 {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

// dayOf reads a day of the month ("9", "09", "9,"), 0 if it is none.
func dayOf(w string) int {
	w = strings.TrimSuffix(w, ",")
	if len(w) == 0 || len(w) > 2 || !allDigits(w) {
		return 0
	}
	d, _ := strconv.Atoi(w)
	if d > 31 {
		return 0
	}
	return d
}

// clockOf reads "15:04" or "15:04:05".
func clockOf(w string) (h, m, s int, ok bool) {
	parts := strings.Split(w, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, 0, 0, false
	}
	var v [3]int
	for i, p := range parts {
		if len(p) == 0 || len(p) > 2 || !allDigits(p) {
			return 0, 0, 0, false
		}
		v[i], _ = strconv.Atoi(p)
	}
	if v[0] > 23 || v[1] > 59 || v[2] > 60 {
		return 0, 0, 0, false
	}
	return v[0], v[1], min(v[2], 59), true
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// zoneNames are the zone names seen on From_ lines, with their offsets in
// minutes. Another name of two to five capitals is taken as UTC, as
// time.Parse does.
var zoneNames = map[string]int{
	"UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0,
	"BST": 60, "WEST": 60, "CET": 60, "MET": 60, "MEZ": 60,
	"CEST": 120, "MEST": 120, "MESZ": 120, "EET": 120, "EEST": 180, "MSK": 180,
	"EST": -300, "EDT": -240, "CST": -360, "CDT": -300, "MST": -420, "MDT": -360,
	"PST": -480, "PDT": -420, "AKST": -540, "AKDT": -480, "HST": -600,
	"JST": 540, "KST": 540, "HKT": 480, "SGT": 480, "AWST": 480, "ACST": 570,
	"AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780,
}

// zoneOf reads a zone: "+0100", "-05:00", "GMT+0100", a name of letters,
// or a name in parentheses. It returns the offset in seconds and whether it
// was a name.
func zoneOf(w string) (offset int, name, ok bool) {
	if strings.HasPrefix(w, "(") && strings.HasSuffix(w, ")") {
		w = w[1 : len(w)-1]
	}
	for _, p := range []string{"GMT", "UTC", "UT"} {
		if len(w) > len(p) && strings.EqualFold(w[:len(p)], p) && (w[len(p)] == '+' || w[len(p)] == '-') {
			w = w[len(p):]
			break
		}
	}
	if len(w) > 0 && (w[0] == '+' || w[0] == '-') {
		digits := strings.Replace(w[1:], ":", "", 1)
		if len(digits) != 4 || !allDigits(digits) {
			return 0, false, false
		}
		h, _ := strconv.Atoi(digits[:2])
		m, _ := strconv.Atoi(digits[2:])
		if h > 14 || m > 59 {
			return 0, false, false
		}
		off := (h*60 + m) * 60
		if w[0] == '-' {
			off = -off
		}
		return off, false, true
	}
	if off, known := zoneNames[strings.ToUpper(w)]; known {
		return off * 60, true, true
	}
	if len(w) < 2 || len(w) > 5 {
		return 0, false, false
	}
	for _, c := range []byte(w) {
		if c < 'A' || c > 'Z' {
			return 0, false, false
		}
	}
	return 0, true, true
}
