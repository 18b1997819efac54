package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/costctl/costctl/ledger"
	"github.com/costctl/costctl/pricing"
)

// redisBudgets keeps budget counters and holds in Redis (--redis), for
// proxies at request rates a ledger transaction per reservation would not
// carry. Each tenant has one hash per UTC day and one per UTC month:
// spent (the ledger's committed spend as last reconciled, plus every cost
// proxies committed since), reserved (the live holds' sum) and inc (every
// cost added, for reconciliation); each hold is also a member of a sorted
// set by expiry, so the holds of a proxy that died stop counting after
// their TTL. One Lua script checks spent + reserved + worst case ≤ budget
// for the day and the month and takes both holds, atomically: the budget
// holds across every proxy on the Redis. A call's hold is released, and
// its cost added to spent, after its row is committed to the ledger.
//
// The ledger stays the record of truth. A hash that does not exist (a new
// day, a flushed or replaced Redis) is created from the ledger's spend
// before its first reservation, and every reconcile interval each
// budgeted tenant's spent is set again from the ledger: the ledger's
// spend, plus what proxies added after it was read. So spend by other
// writers (ingest, eval, a proxy without Redis), or a cost a crashed proxy
// committed but never added, joins the budget within one interval. What a
// lost Redis cannot bring back is the holds of calls then in flight: until
// those calls are committed, other proxies do not see them.
//
// Amounts are exact: dollars and pico-dollars apart (Lua numbers are
// doubles, exact below 2^53; pico-dollars are kept below 10^12).
type redisBudgets struct {
	rdb    redis.UniversalClient
	prefix string
	spend  SpendReader
	ttl    time.Duration
	logf   func(string, ...any)
}

// Keys: PREFIX budget:{TENANT}:day:N (and :month:YYYYMM), the braces a
// Redis Cluster hash tag (one tenant's keys on one node), the tenant
// escaped; the holds are KEY:holds (sorted set) and KEY:amounts (hash).
func (b *redisBudgets) key(scope string, tenant string, now time.Time) string {
	t := url.QueryEscape(tenant)
	if scope == "day" {
		return fmt.Sprintf("%sbudget:{%s}:day:%d", b.prefix, t, dayOf(now))
	}
	u := now.UTC()
	return fmt.Sprintf("%sbudget:{%s}:month:%04d%02d", b.prefix, t, u.Year(), int(u.Month()))
}

// Lua: amounts as (dollars, pico) pairs, normalised so 0 ≤ pico < 10^12.
const luaAmounts = `
local P = 1000000000000
local function norm(d, p)
  local c = math.floor(p / P)
  return d + c, p - c * P
end
local function add(d1, p1, d2, p2) return norm(d1 + d2, p1 + p2) end
local function cmp(d1, p1, d2, p2)
  if d1 ~= d2 then if d1 < d2 then return -1 else return 1 end end
  if p1 < p2 then return -1 elseif p1 > p2 then return 1 end
  return 0
end
local function s(x) return string.format('%.0f', x) end
local function get(k, f)
  local v = redis.call('HMGET', k, f .. 'd', f .. 'p')
  return tonumber(v[1] or '0'), tonumber(v[2] or '0')
end
local function put(k, f, d, p) redis.call('HSET', k, f .. 'd', s(d), f .. 'p', s(p)) end
-- purge drops k's expired holds from its reserved sum.
local function purge(k, now)
  local ids = redis.call('ZRANGEBYSCORE', k .. ':holds', '-inf', now)
  if #ids == 0 then return end
  local rd, rp = get(k, 'r')
  for _, id in ipairs(ids) do
    local a = redis.call('HGET', k .. ':amounts', id)
    if a then
      local d, p = string.match(a, '^(%-?%d+):(%d+)$')
      rd, rp = add(rd, rp, -tonumber(d), -tonumber(p))
      redis.call('HDEL', k .. ':amounts', id)
    end
    redis.call('ZREM', k .. ':holds', id)
  end
  put(k, 'r', rd, rp)
end
`

// reserveScript: KEYS the hashes of the scopes to hold (1 or 2); ARGV
// now_ms, amount dollars, pico, hold id, expiry ms, then per key its cap
// dollars, pico and the key's TTL in seconds. Returns {-1, i} when key i
// was never created (the caller creates it from the ledger and retries),
// {0, i, used dollars, used pico} when key i refuses, else {1, spent
// dollars, pico of each key}.
var reserveScript = redis.NewScript(luaAmounts + `
local now = tonumber(ARGV[1])
local ad, ap = tonumber(ARGV[2]), tonumber(ARGV[3])
local id, exp = ARGV[4], tonumber(ARGV[5])
local out = {1}
for i, k in ipairs(KEYS) do
  if redis.call('HEXISTS', k, 'init') == 0 then return {-1, i} end
  purge(k, now)
  local sd, sp = get(k, 's')
  local rd, rp = get(k, 'r')
  local ud, up = add(sd, sp, rd, rp)
  local td, tp = add(ud, up, ad, ap)
  local base = 5 + (i - 1) * 3
  if cmp(td, tp, tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])) > 0 then
    return {0, i, s(ud), s(up)}
  end
  table.insert(out, s(sd))
  table.insert(out, s(sp))
end
for i, k in ipairs(KEYS) do
  local rd, rp = get(k, 'r')
  rd, rp = add(rd, rp, ad, ap)
  put(k, 'r', rd, rp)
  redis.call('ZADD', k .. ':holds', exp, id)
  redis.call('HSET', k .. ':amounts', id, s(ad) .. ':' .. s(ap))
  local ttl = tonumber(ARGV[5 + (i - 1) * 3 + 3])
  for _, kk in ipairs({k, k .. ':holds', k .. ':amounts'}) do redis.call('EXPIRE', kk, ttl) end
end
return out
`)

// releaseScript: KEYS the hashes; ARGV hold id, cost dollars, pico (added
// to spent and inc of each key that exists).
var releaseScript = redis.NewScript(luaAmounts + `
local id = ARGV[1]
local cd, cp = tonumber(ARGV[2]), tonumber(ARGV[3])
for _, k in ipairs(KEYS) do
  local a = redis.call('HGET', k .. ':amounts', id)
  if a and redis.call('ZREM', k .. ':holds', id) == 1 then
    local d, p = string.match(a, '^(%-?%d+):(%d+)$')
    local rd, rp = get(k, 'r')
    rd, rp = add(rd, rp, -tonumber(d), -tonumber(p))
    put(k, 'r', rd, rp)
  end
  redis.call('HDEL', k .. ':amounts', id)
  if (cd ~= 0 or cp ~= 0) and redis.call('HEXISTS', k, 'init') == 1 then
    local sd, sp = get(k, 's')
    put(k, 's', add(sd, sp, cd, cp))
    local id_, ip = get(k, 'i')
    put(k, 'i', add(id_, ip, cd, cp))
  end
end
return 1
`)

// reconcileScript: KEYS[1] the hash; ARGV the ledger's spend (dollars,
// pico), inc as read before the ledger was (dollars, pico), the key's
// TTL. spent becomes the ledger's spend plus what was added since the
// ledger was read; a key that does not exist is created.
var reconcileScript = redis.NewScript(luaAmounts + `
local k = KEYS[1]
local ld, lp = tonumber(ARGV[1]), tonumber(ARGV[2])
local snd, snp = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('HEXISTS', k, 'init') == 0 then
  redis.call('HSET', k, 'init', '1', 'sd', s(ld), 'sp', s(lp), 'id', '0', 'ip', '0', 'rd', '0', 'rp', '0')
else
  local id_, ip = get(k, 'i')
  local dd, dp = add(id_, ip, -snd, -snp)
  put(k, 's', add(ld, lp, dd, dp))
end
redis.call('EXPIRE', k, tonumber(ARGV[5]))
return 1
`)

// keyTTL: a day's hash lives until a day after its day, a month's until
// a week after its month.
func keyTTL(scope string, now time.Time) int64 {
	var end time.Time
	if scope == "day" {
		end = dayStart(now).AddDate(0, 0, 2)
	} else {
		end = monthStart(now).AddDate(0, 1, 7)
	}
	return int64(end.Sub(now)/time.Second) + 1
}

func amountArgs(a pricing.Amount) (string, string) {
	return strconv.FormatInt(a.Dollars, 10), strconv.FormatInt(a.Pico, 10)
}

func parseAmount(d, p any) pricing.Amount {
	ds, _ := d.(string)
	ps, _ := p.(string)
	dv, _ := strconv.ParseInt(ds, 10, 64)
	pv, _ := strconv.ParseInt(ps, 10, 64)
	return pricing.Amount{Dollars: dv}.AddPico(pv)
}

func (b *redisBudgets) reserve(ctx context.Context, tenant string, p ledger.Policy, worst pricing.Amount, now time.Time) (reservation, *overBudget, error) {
	r := reservation{tenant: tenant, day: dayOf(now), month: monthOf(now), amt: worst}
	type scope struct {
		name, period string
		budget       pricing.Money
		resetAt      time.Time
	}
	var scopes []scope
	if p.DailyBudget > 0 {
		scopes = append(scopes, scope{"day", "daily", p.DailyBudget, dayStart(now).AddDate(0, 0, 1)})
	}
	if p.MonthlyBudget > 0 {
		scopes = append(scopes, scope{"month", "monthly", p.MonthlyBudget, monthStart(now).AddDate(0, 1, 0)})
	}
	if len(scopes) == 0 {
		return r, nil, nil
	}
	var idb [12]byte
	_, _ = rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	wd, wp := amountArgs(worst)
	keys := make([]string, len(scopes))
	args := []any{now.UnixMilli(), wd, wp, id, now.Add(b.ttl).UnixMilli()}
	for i, sc := range scopes {
		keys[i] = b.key(sc.name, tenant, now)
		cd, cp := amountArgs(pricing.AmountFromMoney(sc.budget))
		args = append(args, cd, cp, keyTTL(sc.name, now))
	}
	for attempt := 0; ; attempt++ {
		res, err := reserveScript.Run(ctx, b.rdb, keys, args...).Slice()
		if err != nil {
			return reservation{}, nil, fmt.Errorf("redis reserve: %w", err)
		}
		code, _ := res[0].(int64)
		switch code {
		case -1:
			if attempt > 2 {
				return reservation{}, nil, errors.New("redis reserve: budget counters vanish as they are created")
			}
			i, _ := res[1].(int64)
			if err := b.reconcileKey(ctx, tenant, scopes[i-1].name, now); err != nil {
				return reservation{}, nil, err
			}
			continue
		case 0:
			i, _ := res[1].(int64)
			sc := scopes[i-1]
			return reservation{}, &overBudget{tenant: tenant, period: sc.period, budget: sc.budget, spent: parseAmount(res[2], res[3]), worst: worst, resetAt: sc.resetAt}, nil
		}
		for i, sc := range scopes {
			r.holds = append(r.holds, hold{scope: keys[i], id: id})
			before := parseAmount(res[1+2*i], res[2+2*i])
			if sc.name == "day" {
				r.dayBefore = before
			} else {
				r.monthBefore = before
			}
		}
		return r, nil, nil
	}
}

func (b *redisBudgets) settle(r reservation, actual pricing.Amount, _ time.Time) spend {
	return spend{tenant: r.tenant, dayBefore: r.dayBefore, dayAfter: r.dayBefore.Add(actual), monthBefore: r.monthBefore, monthAfter: r.monthBefore.Add(actual)}
}

// done releases the holds and adds the cost to spent once the row is
// committed. A row whose write failed is counted all the same (the call
// may have been billed); the next reconciliation takes it out.
func (b *redisBudgets) done(ctx context.Context, r reservation, o rowOutcome, _ time.Time, cost pricing.Amount, _ time.Time) {
	if len(r.holds) == 0 {
		return
	}
	switch {
	case o == rowNone:
		cost = pricing.Amount{}
	case r.unpriced:
		cost = r.amt // what it may have cost: the ledger row says $0
	}
	keys := make([]string, len(r.holds))
	for i, h := range r.holds {
		keys[i] = h.scope
	}
	cd, cp := amountArgs(cost)
	if err := releaseScript.Run(ctx, b.rdb, keys, r.holds[0].id, cd, cp).Err(); err != nil {
		// The hold expires after its TTL; the next reconciliation
		// counts the cost from the ledger.
		b.logf("cannot release a budget hold in redis (it expires by itself): %v", err)
	}
}

// refresh reconciles every budgeted tenant's counters with the ledger.
func (b *redisBudgets) refresh(ctx context.Context, now time.Time, policies map[string]ledger.Policy) error {
	var tenants []string
	for t, p := range policies {
		if budgeted(p) {
			tenants = append(tenants, t)
		}
	}
	return b.reconcile(ctx, now, tenants)
}

// reconcile sets each tenant's spent today and this month from the
// ledger: inc is read first, then the ledger, and spent becomes the
// ledger's spend plus what inc grew by since. A cost committed after the
// ledger was read was added after inc was read, so it counts once; one
// committed before and added after counts twice until the next
// reconciliation (the safe side).
func (b *redisBudgets) reconcile(ctx context.Context, now time.Time, tenants []string) error {
	if len(tenants) == 0 || b.spend == nil {
		return nil
	}
	type snap struct {
		key   string
		scope string
		inc   pricing.Amount
	}
	snaps := make(map[string][2]snap, len(tenants))
	for _, t := range tenants {
		var s [2]snap
		for i, sc := range []string{"day", "month"} {
			k := b.key(sc, t, now)
			v, err := b.rdb.HMGet(ctx, k, "id", "ip").Result()
			if err != nil {
				return fmt.Errorf("redis reconcile: %w", err)
			}
			s[i] = snap{key: k, scope: sc, inc: parseAmount(v[0], v[1])}
		}
		snaps[t] = s
	}
	today, month, err := ledgerTenantSpend(ctx, b.spend, now)
	if err != nil {
		return err
	}
	for t, s := range snaps {
		for i, rows := range [][]ledger.GroupRow{today, month} {
			ld, lp := amountArgs(costOf(rows, t))
			sd, sp := amountArgs(s[i].inc)
			if err := reconcileScript.Run(ctx, b.rdb, []string{s[i].key}, ld, lp, sd, sp, keyTTL(s[i].scope, now)).Err(); err != nil {
				return fmt.Errorf("redis reconcile: %w", err)
			}
		}
	}
	return nil
}

// reconcileKey creates (or reconciles) one tenant's counters of scope.
func (b *redisBudgets) reconcileKey(ctx context.Context, tenant, scope string, now time.Time) error {
	k := b.key(scope, tenant, now)
	v, err := b.rdb.HMGet(ctx, k, "id", "ip").Result()
	if err != nil {
		return fmt.Errorf("redis reconcile: %w", err)
	}
	inc := parseAmount(v[0], v[1])
	var l pricing.Amount
	if b.spend != nil {
		start := dayStart(now)
		if scope == "month" {
			start = monthStart(now)
		}
		rows, err := b.spend.GroupedSince(ctx, "tenant", start, now)
		if err != nil {
			return fmt.Errorf("proxy: read the ledger's spend per tenant: %w", err)
		}
		l = costOf(rows, tenant)
	}
	ld, lp := amountArgs(l)
	sd, sp := amountArgs(inc)
	if err := reconcileScript.Run(ctx, b.rdb, []string{k}, ld, lp, sd, sp, keyTTL(scope, now)).Err(); err != nil {
		return fmt.Errorf("redis reconcile: %w", err)
	}
	return nil
}

func (b *redisBudgets) spent(ctx context.Context, tenant string, now time.Time) (day, dayRes, month, monthRes pricing.Amount, err error) {
	read := func(k string) (pricing.Amount, pricing.Amount, error) {
		v, err := b.rdb.HMGet(ctx, k, "sd", "sp", "rd", "rp").Result()
		if err != nil {
			return pricing.Amount{}, pricing.Amount{}, err
		}
		return parseAmount(v[0], v[1]), parseAmount(v[2], v[3]), nil
	}
	if day, dayRes, err = read(b.key("day", tenant, now)); err != nil {
		return
	}
	month, monthRes, err = read(b.key("month", tenant, now))
	return
}

func (b *redisBudgets) close() {}
