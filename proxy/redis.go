package proxy

import (
	"context"
	"time"
)

// policyChannel is the Redis channel a proxy publishes on when it sees a
// policy change in the ledger: every proxy on the Redis reloads its
// policies at once, so a block reaches all of them as soon as the first
// one's reload sees it (every PolicyInterval, 500 ms by default).
func (s *Server) policyChannel() string { return s.cfg.RedisPrefix + "policy" }

func (s *Server) publishPolicyChange(ctx context.Context) {
	if err := s.cfg.Redis.Publish(ctx, s.policyChannel(), s.runID).Err(); err != nil {
		s.logf("cannot publish a policy change on redis (other proxies see it at their next reload): %v", err)
	}
}

// subscribePolicies reloads the policies whenever another proxy published
// a change.
func (s *Server) subscribePolicies() {
	defer s.loopWG.Done()
	ps := s.cfg.Redis.Subscribe(context.Background(), s.policyChannel())
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
