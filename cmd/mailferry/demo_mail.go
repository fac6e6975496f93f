package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"strings"
	"time"

	"github.com/mailferry/mailferry/providers/imap/memserver"
)

// demoMailbox is one folder of the demo account.
type demoMailbox struct {
	name  string
	count int
}

var demoMailboxes = []demoMailbox{{"INBOX", 150}, {"Sent", 60}, {"Archive/2024", 80}, {"Work/Projects", 40}}

var (
	demoPeople = []string{"Ana Souza <ana@example.org>", "Bernd Müller <bernd@example.de>", "Chloé Martin <chloe@example.fr>",
		"Dmitri Ivanov <dmitri@example.net>", "Eve Adams <eve@example.com>", "Fatima Khan <fatima@example.org>", "Grace Hopper <grace@example.com>"}
	demoSubjects = []string{"Quarterly report", "Lunch on Friday?", "Re: contract draft", "Invoice 2024-%03d", "Grüße aus München",
		"Server maintenance window", "Fwd: photos", "Meeting notes", "Budget 2025", "Ticket #%d resolved"}
	demoKeywords = []string{"$label1", "$forwarded", "project-x", "$junk"}
)

// demoMessages makes realistic, deterministic mail: plain and multipart
// messages with attachments, encoded headers, flags and keywords, one
// message without a Message-ID and one identical copy.
func demoMessages(mailbox string, n int, seed uint64) []memserver.Message {
	rng := rand.New(rand.NewPCG(seed, 42))
	start := time.Date(2024, 1, 3, 8, 0, 0, 0, time.FixedZone("CET", 3600))
	var out []memserver.Message
	for i := range n {
		date := start.Add(time.Duration(i)*7*time.Hour + time.Duration(rng.IntN(3600))*time.Second)
		from := demoPeople[rng.IntN(len(demoPeople))]
		to := demoPeople[rng.IntN(len(demoPeople))]
		subject := demoSubjects[rng.IntN(len(demoSubjects))]
		if strings.Contains(subject, "%") {
			subject = fmt.Sprintf(subject, rng.IntN(900)+100)
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "Return-Path: <%s>\r\n", strings.Trim(strings.SplitN(from, "<", 2)[1], ">"))
		fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\n", mime.QEncoding.Encode("utf-8", from), mime.QEncoding.Encode("utf-8", to))
		fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
		fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
		if !(mailbox == "INBOX" && i == 17) { // one message without Message-ID
			fmt.Fprintf(&b, "Message-ID: <%s.%d.%d@mail.example.org>\r\n", strings.ReplaceAll(strings.ToLower(mailbox), "/", "-"), seed, i)
		}
		b.WriteString("MIME-Version: 1.0\r\n")
		text := demoText(rng)
		if rng.IntN(5) == 0 {
			boundary := fmt.Sprintf("=_boundary_%d_%d", seed, i)
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
			fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", boundary, text)
			att := make([]byte, 4<<10+rng.IntN(60<<10))
			for j := range att {
				att[j] = byte(rng.Uint32())
			}
			fmt.Fprintf(&b, "--%s\r\nContent-Type: application/pdf; name=\"scan-%d.pdf\"\r\nContent-Disposition: attachment; filename=\"scan-%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary, i, i)
			enc := base64.StdEncoding.EncodeToString(att)
			for len(enc) > 76 {
				b.WriteString(enc[:76] + "\r\n")
				enc = enc[76:]
			}
			fmt.Fprintf(&b, "%s\r\n--%s--\r\n", enc, boundary)
		} else {
			fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", text)
		}
		var flags []string
		if rng.IntN(10) < 7 {
			flags = append(flags, `\Seen`)
		}
		if rng.IntN(10) == 0 {
			flags = append(flags, `\Answered`)
		}
		if rng.IntN(20) == 0 {
			flags = append(flags, `\Flagged`)
		}
		if rng.IntN(6) == 0 {
			flags = append(flags, demoKeywords[rng.IntN(len(demoKeywords))])
		}
		out = append(out, memserver.Message{Raw: b.Bytes(), Flags: flags, Date: date})
	}
	if mailbox == "INBOX" && n > 30 {
		out[30] = out[29] // an identical copy: both must arrive
	}
	return out
}

func demoText(rng *rand.Rand) string {
	words := strings.Fields("the server move is planned for the weekend please check your folders after the migration and report anything missing thanks for your patience während der Umstellung bleibt die Adresse gleich")
	var lines []string
	for range 3 + rng.IntN(20) {
		var l []string
		for range 6 + rng.IntN(8) {
			l = append(l, words[rng.IntN(len(words))])
		}
		lines = append(lines, strings.Join(l, " "))
	}
	return strings.Join(lines, "\r\n")
}
