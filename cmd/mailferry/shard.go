package main

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// shard is one part of a batch split across machines (--shard i/N): each
// account pair belongs to exactly one shard, chosen from a hash of its
// source user, so every shard process can pick its accounts from the same
// batch file without talking to the others.
type shard struct {
	index, count int // count 0: not sharded
}

func addShardFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "shard", "", "run only shard I of N (I from 0, e.g. 0/4): the accounts whose source user hashes to I; use one checkpoint per shard")
}

func parseShard(s string) (shard, error) {
	if s == "" {
		return shard{}, nil
	}
	i, n, ok := strings.Cut(s, "/")
	index, err1 := strconv.Atoi(strings.TrimSpace(i))
	count, err2 := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err1 != nil || err2 != nil || count < 1 || index < 0 || index >= count {
		return shard{}, usagef("--shard %q: want I/N with 0 <= I < N, e.g. 0/4", s)
	}
	return shard{index, count}, nil
}

// shardOf is the shard of a source user among n: FNV-1a of the user name,
// lower-cased and trimmed as the checkpoint keys accounts, modulo n. It
// must never change: shards of a running move depend on it.
func shardOf(sourceUser string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(strings.ToLower(strings.TrimSpace(sourceUser))))
	return int(h.Sum64() % uint64(n))
}

// owns reports whether the account pair of sourceUser belongs here.
func (s shard) owns(sourceUser string) bool {
	return s.count <= 1 || shardOf(sourceUser, s.count) == s.index
}

// capShare is this shard's part of a per-host connection cap meant for
// the whole move: the shards share the server, so each gets total/N
// (shardFlags refuses a total below N). 0 (no cap) stays 0.
func (s shard) capShare(total int) int {
	if total <= 0 || s.count <= 1 {
		return total
	}
	return max(total/s.count, 1)
}
