package proxy

import (
	"context"
	"math/big"
	"time"

	"github.com/costctl/costctl/alerts"
	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// Spike alerts: every SpikeInterval the proxy compares each tenant's spend
// over the last 5 minutes (ledger.BurnWindow, every source) with its
// baseline — its spend in the same hour of each of the past 7 days, per 5
// minutes — and alerts when it is above SpikeFactor × the baseline. The
// baseline is never below SpikeFloor (default $1 per 5 minutes), so a
// tenant that spends cents does not page anyone. Read from the rollups;
// at most one spike alert per tenant per day (the alerter).

// DefaultSpikeFloor is the least baseline a spike is measured against.
const DefaultSpikeFloor = pricing.NanoPerDollar // $1 per 5 minutes

const baselineDays = 7

// checkSpikes runs one comparison at now.
func (s *Server) checkSpikes(ctx context.Context, now time.Time) error {
	if s.cfg.Spend == nil || !s.alerts.on() || s.cfg.SpikeFactor <= 1 {
		return nil
	}
	burn, err := s.cfg.Spend.GroupedSince(ctx, "tenant", ledger.BurnStart(now), now)
	if err != nil {
		return err
	}
	if len(burn) == 0 {
		return nil
	}
	base := map[string]pricing.Amount{}
	for d := 1; d <= baselineDays; d++ {
		end := now.AddDate(0, 0, -d)
		rows, err := s.cfg.Spend.Grouped(ctx, "tenant", end.Add(-time.Hour), end)
		if err != nil {
			return err
		}
		for _, r := range rows {
			base[r.Key] = base[r.Key].Add(r.Cost)
		}
	}
	windows := int64(baselineDays) * int64(time.Hour/ledger.BurnWindow) // 5-minute windows in the baseline
	floor := pricing.AmountFromMoney(s.cfg.SpikeFloor)
	for _, r := range burn {
		// burn > factor × max(base/windows, floor), compared exactly:
		// burn × windows × 1000 > factor×1000 × max(base, floor × windows).
		b := base[r.Key]
		if fw := floor.MulInt64(windows); b.Cmp(fw) < 0 {
			b = fw
		}
		factor := int64(s.cfg.SpikeFactor * 1000)
		if r.Cost.MulInt64(windows).MulInt64(1000).Cmp(b.MulInt64(factor)) > 0 {
			perWindow := base[r.Key].Rat()
			perWindow.Quo(perWindow, new(big.Rat).SetInt64(windows))
			baseline, _ := pricing.AmountFromRat(perWindow)
			s.alerts.send(alerts.Alert{Tenant: r.Key, Kind: alerts.KindSpike, Spend: r.Cost, Baseline: baseline, Window: ledger.BurnWindow, At: now})
		}
	}
	return nil
}

func (s *Server) spikeLoop() {
	defer s.loopWG.Done()
	t := time.NewTicker(s.cfg.SpikeInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.checkSpikes(ctx, s.now()); err != nil {
			s.logf("spike check failed: %v", err)
		}
		cancel()
	}
}
