package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/migrate"
)

// selectionFlags are the folder rules and message filters of migrate,
// which verify and preflight take too so that they expect what migrate
// copies.
type selectionFlags struct {
	include, exclude, maps []string
	// Before one pair of flags: --include-folder and --exclude-folder
	// took regular expressions, --include and --exclude globs. The old
	// names still work, hidden, for one release.
	includeRE, excludeRE      []string
	since, before, maxSize    string
	gmailLabels, gmailAllMail string
	// warn, if set, is told of a glob that looks like a regular expression.
	warn func(string)
}

func (s *selectionFlags) addFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&s.include, "include", nil, "copy only source mailboxes whose whole name ('/'-separated) matches this glob (* any run of characters, '/' too; ? one), e.g. 'Projects/*'; 're:' before a regular expression, e.g. 're:INBOX|Sent|Projects/.*'; repeatable")
	f.StringArrayVar(&s.exclude, "exclude", nil, "leave out source mailboxes whose whole name matches this glob, e.g. 'Junk' or 'Archive/20*'; 're:Junk|Trash' for a regular expression; repeatable")
	f.StringArrayVar(&s.maps, "map-folder", nil, "SOURCE=DEST: copy the source mailbox SOURCE and those under it to DEST (e.g. 'Sent Items=Sent'); repeatable, first match wins")
	f.StringVar(&s.since, "since", "", "copy only messages whose internal date is on or after this day (YYYY-MM-DD)")
	f.StringVar(&s.before, "before", "", "copy only messages whose internal date is before this day (YYYY-MM-DD)")
	f.StringVar(&s.maxSize, "max-size", "", "leave out messages larger than this (bytes, or with K, M, G: 1024-based, e.g. 25M)")
	f.StringArrayVar(&s.includeRE, "include-folder", nil, "old name of --include 're:…'")
	f.StringArrayVar(&s.excludeRE, "exclude-folder", nil, "old name of --exclude 're:…'")
	f.MarkHidden("include-folder")
	f.MarkHidden("exclude-folder")
	// --map is the short spelling of --map-folder: one value, one list.
	f.Var(f.Lookup("map-folder").Value, "map", "FROM=TO, same as --map-folder")
	f.StringVar(&s.gmailLabels, "gmail-labels", "", "a message in several Gmail label folders: once (copy it into the first: INBOX, Sent, ..., then by name) or each (into every label folder); default once with --from-preset gmail")
	f.StringVar(&s.gmailAllMail, "gmail-all-mail", "", "[Gmail]/All Mail (\\All): archived (copy only mail in no other folder, to the destination's Archive), skip or all; default archived with --from-preset gmail, else skip")
}

// folderPattern turns one --include or --exclude value into a regular
// expression: a glob, or after "re:" a regular expression. warn, if not
// "", says that a glob looks like a regular expression: --exclude
// 'Junk|Trash' matches only a folder of that very name.
func folderPattern(flag, v string) (pattern, warn string) {
	if re, ok := strings.CutPrefix(v, "re:"); ok {
		return re, ""
	}
	if strings.ContainsAny(v, "|()^$+\\") || strings.Contains(v, ".*") {
		warn = fmt.Sprintf("--%s %q is a glob, matched as written; for a regular expression write --%s 're:%s'", flag, v, flag, v)
	}
	return globPattern(v), warn
}

// selection compiles the folder rules and filters, with the source
// preset's rules: folders that are not mail, and Gmail's labels.
func (s *selectionFlags) selection(src preset) (migrate.Selection, migrate.LabelPolicy, error) {
	sel, err := s.folderSelection()
	if err != nil {
		return sel, migrate.LabelPolicy{}, err
	}
	if sel.Skip, err = src.skipRules(); err != nil {
		return sel, migrate.LabelPolicy{}, err
	}
	pol, err := s.labelPolicy(src)
	return sel, pol, err
}

func (s *selectionFlags) labelPolicy(src preset) (migrate.LabelPolicy, error) {
	var pol migrate.LabelPolicy
	if src.labels {
		pol = migrate.LabelPolicy{Once: true, AllMail: migrate.AllMailArchived, SkipViews: true}
	}
	switch strings.ToLower(s.gmailLabels) {
	case "":
	case "once":
		pol.Once, pol.SkipViews = true, true
	case "each":
		pol.Once = false
	default:
		return pol, usagef("--gmail-labels %q: want once or each", s.gmailLabels)
	}
	switch strings.ToLower(s.gmailAllMail) {
	case "":
	case "archived":
		pol.AllMail = migrate.AllMailArchived
	case "skip":
		pol.AllMail = migrate.AllMailSkip
	case "all":
		pol.AllMail = migrate.AllMailEvery
	default:
		return pol, usagef("--gmail-all-mail %q: want archived, skip or all", s.gmailAllMail)
	}
	return pol, nil
}

func (s *selectionFlags) folderSelection() (migrate.Selection, error) {
	var sel migrate.Selection
	for _, set := range []struct {
		flag     string
		globs    []string
		old      []string
		patterns *[]*regexp.Regexp
	}{{"include", s.include, s.includeRE, &sel.Include}, {"exclude", s.exclude, s.excludeRE, &sel.Exclude}} {
		for i, v := range append(slices.Clone(set.globs), set.old...) {
			p, warn := v, ""
			if i < len(set.globs) {
				p, warn = folderPattern(set.flag, v)
			}
			if warn != "" && s.warn != nil {
				s.warn(warn)
			}
			re, err := migrate.CompileFolderPattern(p)
			if err != nil {
				return sel, usagef("--%s: %v", set.flag, err)
			}
			*set.patterns = append(*set.patterns, re)
		}
	}
	for _, m := range s.maps {
		fm, err := migrate.ParseFolderMap(m)
		if err != nil {
			return sel, usagef("--map-folder: %v", err)
		}
		sel.Map = append(sel.Map, fm)
	}
	var err error
	if sel.Filter.Since, err = parseDay("--since", s.since); err != nil {
		return sel, err
	}
	if sel.Filter.Before, err = parseDay("--before", s.before); err != nil {
		return sel, err
	}
	if !sel.Filter.Since.IsZero() && !sel.Filter.Before.IsZero() && !sel.Filter.Since.Before(sel.Filter.Before) {
		return sel, usagef("--since %s is not before --before %s: no message would be copied", s.since, s.before)
	}
	if sel.Filter.MaxSize, err = parseSize(s.maxSize); err != nil {
		return sel, err
	}
	return sel, nil
}

func parseDay(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, usagef("%s %q: want a day as YYYY-MM-DD", flag, s)
	}
	return t, nil
}

// parseSize reads a byte count with an optional K, M or G (KB, KiB, ...).
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	num := strings.TrimSpace(strings.ToUpper(s))
	num = strings.TrimSuffix(strings.TrimSuffix(num, "B"), "I")
	mult := int64(1)
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			num = num[:n-1]
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, usagef("--max-size %q: want a positive size such as 26214400, 25M or 1G", s)
	}
	return v * mult, nil
}

// globPattern turns a folder glob into the regular expression the folder
// rules take: * is any run of characters, ? one, the rest is literal.
func globPattern(g string) string {
	var b strings.Builder
	for _, r := range g {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}
