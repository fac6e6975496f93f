package migrate

import (
	"slices"

	"github.com/mailferry/mailferry/providers"
)

// pool indexes the destination messages no ledger record has claimed, for
// multiset matching: each destination message matches at most one source
// message, so three identical source messages need three destination
// copies before they count as present.
type pool struct {
	byFP  map[providers.Fingerprint][]providers.UID // ascending UID
	taken map[providers.UID]bool
}

func newPool() *pool {
	return &pool{byFP: map[providers.Fingerprint][]providers.UID{}, taken: map[providers.UID]bool{}}
}

func (p *pool) add(m providers.MessageInfo) {
	p.byFP[m.Key.Fingerprint] = append(p.byFP[m.Key.Fingerprint], m.UID)
}

// claim marks uid as accounted for by a ledger record.
func (p *pool) claim(uid providers.UID) { p.taken[uid] = true }

// takeFingerprint takes the lowest unclaimed message with fingerprint fp and
// a UID of at least min.
func (p *pool) takeFingerprint(fp providers.Fingerprint, min uint32) (providers.UID, bool) {
	for _, uid := range p.byFP[fp] {
		if uint32(uid) >= min && !p.taken[uid] {
			p.taken[uid] = true
			return uid, true
		}
	}
	return 0, false
}

// sort puts each fingerprint's UIDs in ascending order, for pools filled
// from a map.
func (p *pool) sort() {
	for _, uids := range p.byFP {
		slices.Sort(uids)
	}
}
