package imaptest

import "math/rand/v2"

// LabFolders are the 13 mailboxes of an ordinary user, as the lab's
// generator makes them, with the share of the user's mail each holds: most
// in INBOX and Sent, a little everywhere else, one empty. Benchmarks of
// many small accounts seed their users with them.
var LabFolders = []struct {
	Name  string
	Share float64
}{
	{"INBOX", 0.40}, {"Sent", 0.15}, {"Drafts", 0.02}, {"Trash", 0.05}, {"Junk", 0.03}, {"Archive", 0.08},
	{"Archive/2023", 0.06}, {"Archive/2024", 0.06}, {"Projects", 0.03}, {"Projects/Alpha", 0.04},
	{"Projects/Beta", 0.03}, {"Lists/go-dev", 0.05}, {"Family", 0.00},
}

// LabSpread picks a LabFolders mailbox for each of n messages, by share.
func LabSpread(n int, rng *rand.Rand) []string {
	out := make([]string, n)
	for i := range out {
		x, box := rng.Float64(), LabFolders[0].Name
		for _, f := range LabFolders {
			if x < f.Share {
				box = f.Name
				break
			}
			x -= f.Share
		}
		out[i] = box
	}
	return out
}
