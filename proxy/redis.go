package proxy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/ledger"
)

// policyChannel is the Redis channel a proxy publishes on when it sees a
// policy change in the ledger: every proxy on the Redis reloads its
// policies at once, so a block reaches all of them as soon as the first
// one's reload sees it (every PolicyInterval, 500 ms by default).
func (s *Server) policyChannel() string { return s.cfg.RedisPrefix + "policy" }

// flagsKey is the Redis hash of every tenant's block flag and sample share
// (field tenant, value "BLOCKED,SAMPLE_BP"; tenants with neither are
// absent): the ledger's policies as the last proxy to see them change
// wrote them.
func (s *Server) flagsKey() string { return s.cfg.RedisPrefix + "flags" }

// publishPolicyChange writes the flags of p to Redis, then announces the
// change: every proxy applies the flags from Redis at once (even one that
// cannot read the ledger at that moment) and reloads the rest of the
// policies (budgets, routes) from the ledger.
func (s *Server) publishPolicyChange(ctx context.Context, p map[string]ledger.Policy) {
	pipe := s.cfg.Redis.TxPipeline()
	pipe.Del(ctx, s.flagsKey())
	var vals []any
	for t, pol := range p {
		if pol.Blocked || pol.SampleBP > 0 {
			b := 0
			if pol.Blocked {
				b = 1
			}
			vals = append(vals, t, fmt.Sprintf("%d,%d", b, pol.SampleBP))
		}
	}
	if len(vals) > 0 {
		pipe.HSet(ctx, s.flagsKey(), vals...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.logf("cannot write the block flags to redis (other proxies see them at their next reload): %v", err)
	}
	if err := s.cfg.Redis.Publish(ctx, s.policyChannel(), s.runID).Err(); err != nil {
		s.logf("cannot publish a policy change on redis (other proxies see it at their next reload): %v", err)
	}
}

// subscribe subscribes to other proxies' policy changes and waits (up to
// subscribeWait) for Redis to confirm it, so no change published after New
// returns is missed. Redis not confirming in time is logged; the
// subscription is made when Redis answers (the policies are reloaded from
// the ledger meanwhile).
func (s *Server) subscribe() *redis.PubSub {
	ps := s.cfg.Redis.Subscribe(context.Background(), s.policyChannel())
	ctx, cancel := context.WithTimeout(context.Background(), subscribeWait)
	defer cancel()
	if _, err := ps.Receive(ctx); err != nil {
		s.logf("cannot subscribe to policy changes on redis yet (retrying; policies reload from the ledger meanwhile): %v", err)
	}
	return ps
}

const subscribeWait = 2 * time.Second

// subscribePolicies reloads the policies whenever another proxy published
// a change on ps.
func (s *Server) subscribePolicies(ps *redis.PubSub) {
	defer s.loopWG.Done()
	defer func() { _ = ps.Close() }() // a subscription: nothing to flush
	ch := ps.Channel()
	for {
		select {
		case <-s.stop:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if m.Payload == s.runID {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.applyFlags(ctx); err != nil {
				s.logf("cannot read the block flags from redis (reloading from the ledger): %v", err)
			}
			cancel()
			select {
			case s.kick <- struct{}{}:
			default: // a reload is already due
			}
		}
	}
}

// reconcileLoop sets the Redis budget counters from the ledger every
// ReconcileInterval.
func (s *Server) reconcileLoop() {
	defer s.loopWG.Done()
	t := time.NewTicker(s.cfg.ReconcileInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.store.refresh(ctx, s.now(), s.allPolicies())
		cancel()
		if err != nil && !failing {
			s.logf("cannot reconcile the redis budget counters with the ledger (retrying): %v", err)
		}
		failing = err != nil
	}
}

// applyFlags sets this proxy's block flags and sample shares to those
// Redis holds. Its next reload from the ledger agrees with them (the
// ledger is where they were read from), so that reload finds no change
// and raises no second alert.
func (s *Server) applyFlags(ctx context.Context) error {
	m, err := s.cfg.Redis.HGetAll(ctx, s.flagsKey()).Result()
	if err != nil {
		return err
	}
	cur := s.allPolicies()
	next := make(map[string]ledger.Policy, len(cur)+len(m))
	for t, p := range cur {
		p.Blocked, p.SampleBP = false, 0
		next[t] = p
	}
	for t, v := range m {
		b, bp, ok := strings.Cut(v, ",")
		n, err := strconv.ParseInt(bp, 10, 64)
		if !ok || err != nil || n < 0 || n > ledger.MaxSampleBP {
			return fmt.Errorf("redis flags of tenant %s: %q is not BLOCKED,SAMPLE_BP", t, v)
		}
		p, known := next[t]
		if !known {
			p = ledger.Policy{Tenant: t}
		}
		p.Blocked, p.SampleBP = b == "1", n
		next[t] = p
	}
	s.policies.Store(&next)
	return nil
}
