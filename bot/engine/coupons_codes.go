package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/couponcode"
	"github.com/wecombot/wecombot/scenarios"
)

// newCode makes prefix + length random characters from rnd, trying again
// until the code is new (collisions are checked against every known code).
func newCode(tx bot.Tx, rnd io.Reader, prefix string, length int) (string, error) {
	return couponcode.Generate(rnd, prefix, length, func(code string) (bool, error) {
		_, err := tx.Get(bucketCouponCodes, code)
		if errors.Is(err, bot.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	})
}

// MaxGenerate is the most codes one generate request makes.
const MaxGenerate = 100000

// CouponRefusal is an import or generate request the pool's rules refuse
// (unknown pool, a code already known, no generate section): nothing was
// changed. Other errors are the store's.
type CouponRefusal struct{ msg string }

func (e *CouponRefusal) Error() string { return e.msg }

func refusef(format string, args ...any) error { return &CouponRefusal{fmt.Sprintf(format, args...)} }

// Operator requests on a pool's codes (admin API, CLI): appended as events
// and applied by the engine in the event's transaction, like every other
// change; the outcome is kept under the event's dedupe key
// (CouponRequestOutcome) for the API to answer with.
const (
	// EventCouponImport adds Data[DataCodes] (one code per line) to Data[DataPool].
	EventCouponImport bot.EventType = "operator.coupon_import"
	// EventCouponGenerate makes Data[DataCount] new codes for Data[DataPool].
	EventCouponGenerate bot.EventType = "operator.coupon_generate"
)

// Data keys of the coupon operator events.
const (
	DataCodes = "codes"
	DataCount = "n"
)

// CouponRequest is the outcome of an import or generate request.
type CouponRequest struct {
	Pool string `json:"pool"`
	// Imported codes (import) and the pool's free stock after (import).
	Imported int `json:"imported,omitempty"`
	Free     int `json:"free,omitempty"`
	// Codes made (generate).
	Codes []string `json:"codes,omitempty"`
	// Refused says why nothing changed ("" when the request was applied).
	Refused string    `json:"refused,omitempty"`
	At      time.Time `json:"at"`
}

// CouponRequestOutcome returns the outcome of request id (an import or
// generate event's dedupe key), or nil while the engine hasn't applied it.
func CouponRequestOutcome(tx bot.Tx, id string) (*CouponRequest, error) {
	var out CouponRequest
	if found, err := readJSON(tx, bucketCouponRequests, id, &out); err != nil || !found {
		return nil, err
	}
	return &out, nil
}

// couponRequest applies an operator's import or generate event.
func (r *run) couponRequest() error {
	d := r.ev.Data
	id := r.ev.DedupeKey
	if id == "" {
		id = r.ref
	}
	if done, err := r.has(bucketCouponRequests, id); err != nil || done {
		return err // applied already: a replay changes nothing
	}
	out := CouponRequest{Pool: d[DataPool], At: r.at}
	var err error
	switch r.ev.Type {
	case EventCouponImport:
		codes := strings.Split(strings.TrimSpace(d[DataCodes]), "\n")
		if out.Free, err = ImportCoupons(r.tx, r.sc, out.Pool, codes, r.at); err == nil {
			out.Imported = len(codes)
		}
	case EventCouponGenerate:
		n, _ := strconv.Atoi(d[DataCount])
		out.Codes, err = GenerateCoupons(r.tx, r.sc, out.Pool, n, r.e.codeRandom(), r.at)
	}
	var refused *CouponRefusal
	switch {
	case errors.As(err, &refused):
		out.Refused = refused.Error()
		r.log.Warn().Str("pool", out.Pool).Str("refused", out.Refused).Msg("coupon request refused; nothing changed")
	case err != nil:
		return err
	default:
		r.log.Info().Str("pool", out.Pool).Int("imported", out.Imported).Int("generated", len(out.Codes)).Msg("coupon codes added")
	}
	return r.putJSON(bucketCouponRequests, id, out)
}

// ImportCoupons adds codes to pool inside tx: all of them or, when one is
// already known (in any pool), none. It returns the pool's free stock after.
func ImportCoupons(tx bot.Tx, sc *scenarios.Scenario, pool string, codes []string, now time.Time) (int, error) {
	p := sc.Coupon(pool)
	if p == nil {
		return 0, refusef("unknown coupon pool %q (declare it under coupons in the scenario)", pool)
	}
	for _, code := range codes {
		if !couponcode.Valid(code) {
			return 0, refusef("code %q: use at most %d letters, digits, - and _", code, couponcode.MaxLen)
		}
		raw, err := tx.Get(bucketCouponCodes, code)
		if err == nil {
			var c CouponCode
			_ = json.Unmarshal(raw, &c)
			return 0, refusef("code %s is already in pool %s (%s); nothing imported", code, c.Pool, c.Status)
		}
		if !errors.Is(err, bot.ErrNotFound) {
			return 0, err
		}
	}
	for _, code := range codes {
		if err := putCode(tx, &CouponCode{Code: code, Pool: pool, Status: CouponFree, Source: "import", AddedAt: now}); err != nil {
			return 0, err
		}
	}
	return addStock(tx, p, len(codes), 0)
}

// GenerateCoupons makes n new codes for a pool with a generate section and
// adds them to its free stock (for printing, or handing to the shop ahead of
// time). It returns the codes.
func GenerateCoupons(tx bot.Tx, sc *scenarios.Scenario, pool string, n int, rnd io.Reader, now time.Time) ([]string, error) {
	p := sc.Coupon(pool)
	if p == nil {
		return nil, refusef("unknown coupon pool %q (declare it under coupons in the scenario)", pool)
	}
	if p.Generate == nil {
		return nil, refusef("pool %s has no generate section (prefix, length); import its codes instead", pool)
	}
	if n < 1 || n > MaxGenerate {
		return nil, refusef("generate 1 to %d codes, not %d", MaxGenerate, n)
	}
	codes := make([]string, 0, n)
	for range n {
		code, err := newCode(tx, rnd, p.Generate.Prefix, p.Generate.Length)
		if err != nil {
			return nil, err
		}
		if err := putCode(tx, &CouponCode{Code: code, Pool: pool, Status: CouponFree, Source: "generate", AddedAt: now}); err != nil {
			return nil, err
		}
		codes = append(codes, code)
	}
	// Pre-generated codes count against generate.count like lazily generated ones.
	if _, err := addStock(tx, p, n, n); err != nil {
		return nil, err
	}
	return codes, nil
}

func putCode(tx bot.Tx, c *CouponCode) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := tx.Put(bucketCouponCodes, c.Code, raw); err != nil {
		return fmt.Errorf("store coupon code: %w", err)
	}
	if c.Status == CouponFree {
		if err := tx.Put(bucketCouponFree, c.Pool+"|"+c.Code, present); err != nil {
			return fmt.Errorf("store coupon code: %w", err)
		}
	}
	return nil
}

// addStock adds free codes to the pool's counters and re-arms the stock
// alert when the stock rises above it.
func addStock(tx bot.Tx, p *scenarios.CouponPool, free, generated int) (int, error) {
	st, err := loadHotTx[poolState](tx, bucketCouponPools, p.Name) // the engine's copy (a hot record)
	if err != nil {
		return 0, err
	}
	if st == nil {
		st = &poolState{}
	}
	st.Free += free
	st.Generated += generated
	if stock, _ := stockLeft(p, st); stock > p.StockAlert {
		st.Alerted = false
	}
	return st.Free, saveHotTx(tx, bucketCouponPools, p.Name, st)
}

// MemberCoupons returns the member's codes, newest first (for the coupon
// page and the dashboard).
func MemberCoupons(tx bot.Tx, member string) ([]CouponCode, error) {
	var codes []string
	if err := tx.Scan(bucketCouponIssues, member+"|", func(_ string, v []byte) bool {
		codes = append(codes, string(v))
		return true
	}); err != nil {
		return nil, err
	}
	out := make([]CouponCode, 0, len(codes))
	seen := map[string]bool{}
	for _, code := range codes {
		if seen[code] {
			continue
		}
		seen[code] = true
		raw, err := tx.Get(bucketCouponCodes, code)
		if err != nil {
			return nil, fmt.Errorf("coupon %s: %w", code, err)
		}
		var c CouponCode
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].IssuedAt.After(out[j].IssuedAt) })
	return out, nil
}

// CouponCounts are the report's numbers for a pool or a hook.
type CouponCounts struct {
	Issued int `json:"issued"`
	// Redeemed codes were used in a paid order; Expired were issued, unused
	// and are past their validity; Unused are issued, unused and still valid.
	Redeemed int `json:"redeemed"`
	Expired  int `json:"expired"`
	Unused   int `json:"unused"`
	// OrderFen sums the orders that redeemed a code.
	OrderFen int64 `json:"order_fen"`
	// Conversion is Redeemed / Issued (coupon → order).
	Conversion float64 `json:"conversion"`
}

func (c *CouponCounts) add(code *CouponCode, now time.Time) {
	c.Issued++
	switch {
	case code.Status == CouponUsed:
		c.Redeemed++
		c.OrderFen += code.OrderFen
	case code.Expired(now):
		c.Expired++
	default:
		c.Unused++
	}
	c.Conversion = float64(c.Redeemed) / float64(c.Issued)
}

// PoolReport is one pool's stock and results.
type PoolReport struct {
	Pool string `json:"pool"`
	// Free codes are in stock; Stock is what can still be issued (free plus
	// codes still to generate), -1 for pools that generate without limit.
	Free  int  `json:"free"`
	Stock int  `json:"stock"`
	Low   bool `json:"low"`
	CouponCounts
	ByHook map[string]*CouponCounts `json:"by_hook"`
}

// CouponReport is the coupon results the dashboard and `wecombot coupons
// report` show: per pool (scenario order, then pools only the store knows)
// and per hook within it.
type CouponReport struct {
	At    time.Time     `json:"at"`
	Pools []*PoolReport `json:"pools"`
	Total CouponCounts  `json:"total"`
}

// BuildCouponReport reads every code (a read transaction is enough).
func BuildCouponReport(tx bot.Tx, sc *scenarios.Scenario, now time.Time) (*CouponReport, error) {
	rep := &CouponReport{At: now}
	byName := map[string]*PoolReport{}
	get := func(name string) *PoolReport {
		p := byName[name]
		if p == nil {
			p = &PoolReport{Pool: name, ByHook: map[string]*CouponCounts{}}
			byName[name] = p
			rep.Pools = append(rep.Pools, p)
		}
		return p
	}
	for _, p := range sc.Coupons {
		get(p.Name)
	}
	// Free codes are counted from coupon_free (no decoding); only issued and
	// used codes are decoded.
	err := tx.Scan(bucketCouponFree, "", func(k string, _ []byte) bool {
		if pool, _, ok := strings.Cut(k, "|"); ok {
			get(pool).Free++
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("coupon report: %w", err)
	}
	freeJSON := []byte(`"status":"` + CouponFree + `"`)
	var scanErr error
	err = tx.Scan(bucketCouponCodes, "", func(_ string, v []byte) bool {
		if bytes.Contains(v, freeJSON) {
			return true
		}
		var c CouponCode
		if scanErr = json.Unmarshal(v, &c); scanErr != nil {
			return false
		}
		p := get(c.Pool)
		if c.Status == CouponFree {
			return true
		}
		p.CouponCounts.add(&c, now)
		rep.Total.add(&c, now)
		h := p.ByHook[c.Hook]
		if h == nil {
			h = &CouponCounts{}
			p.ByHook[c.Hook] = h
		}
		h.add(&c, now)
		return true
	})
	if err = errors.Join(err, scanErr); err != nil {
		return nil, fmt.Errorf("coupon report: %w", err)
	}
	for _, p := range rep.Pools {
		p.Stock = p.Free
		pool := sc.Coupon(p.Pool)
		if pool == nil {
			continue
		}
		var st poolState
		raw, err := tx.Get(bucketCouponPools, p.Pool)
		if err == nil {
			_ = json.Unmarshal(raw, &st)
		} else if !errors.Is(err, bot.ErrNotFound) {
			return nil, err
		}
		st.Free = p.Free
		if stock, limited := stockLeft(pool, &st); limited {
			p.Stock = stock
			p.Low = stock <= pool.StockAlert
		} else {
			p.Stock = -1
		}
	}
	return rep, nil
}
