package migrate

import "github.com/mailferry/mailferry/providers"

// pool indexes the destination messages no ledger record has claimed, for
// multiset matching: each destination message matches at most one source
// message, so three identical source messages need three destination
// copies before they count as present.
type pool struct {
	byFP  map[providers.Fingerprint][]providers.UID // ascending UID
	byID  map[identity][]providers.UID              // ascending UID; messages with a Message-ID
	taken map[providers.UID]bool
}

// identity is what is left of a message's identity when its size differs:
// its Message-ID and its loose fingerprint (the key fields and the start of
// the body). A server that normalises line ends on APPEND, or an earlier
// tool that added a header (mbsync's X-TUID), changes the size and so the
// fingerprint, not these; a different message re-using the Message-ID has
// another body.
type identity struct {
	messageID string
	loose     providers.Fingerprint
}

func identityOf(k providers.Key) (identity, bool) {
	return identity{k.MessageID, k.Loose}, k.MessageID != ""
}

func newPool() *pool {
	return &pool{byFP: map[providers.Fingerprint][]providers.UID{}, byID: map[identity][]providers.UID{}, taken: map[providers.UID]bool{}}
}

func (p *pool) add(m providers.MessageInfo) {
	p.byFP[m.Key.Fingerprint] = append(p.byFP[m.Key.Fingerprint], m.UID)
	if id, ok := identityOf(m.Key); ok {
		p.byID[id] = append(p.byID[id], m.UID)
	}
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

// takeIdentity takes the one unclaimed message with the identity of k and
// a UID of at least min. When k has no Message-ID, or several unclaimed
// messages share its identity, it takes none: which would be a guess.
func (p *pool) takeIdentity(k providers.Key, min uint32) (providers.UID, bool) {
	id, ok := identityOf(k)
	if !ok {
		return 0, false
	}
	var found providers.UID
	for _, uid := range p.byID[id] {
		if uint32(uid) >= min && !p.taken[uid] {
			if found != 0 {
				return 0, false
			}
			found = uid
		}
	}
	if found == 0 {
		return 0, false
	}
	p.taken[found] = true
	return found, true
}
