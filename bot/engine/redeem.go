package engine

// The redemption catalogue (积分兑换, issue 20): a member spends points on an
// item of redeem.items — a coupon from a pool, a physical gift (she gives a
// shipping address on her signed page, an operator marks it shipped) or a
// tag (a right). A redemption is one event applied in one transaction: the
// points debit, the stock count, the per-member count and the reward commit
// together or not at all, and a replay of the event finds its redemption
// instead of making a second. bbolt (and PostgreSQL's row locks) serialise
// the transactions, so concurrent redemptions never oversell the stock or
// spend the same points twice.
//
// Ways in: the kf command (兑换 lists what she can afford, 兑换 <item>
// redeems), her signed H5 page (member.redeem events), the AI's tools
// (which send the kf command on her behalf) and level gifts (rights.go).
//
// KV buckets:
//
//	redeem_items    <item> → itemState (redeemed count, stock alert latch)
//	redemptions     <id> → Redemption
//	redeem_members  <member>|<item>|<id> → present (per-member limits, her list)
//	redeem_refs     <event ref>|<item> → id: the event's redemption, for replays
//	redeem_seq      n → the last redemption number

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/checkin"
	"github.com/wecombot/wecombot/scenarios"
)

const (
	bucketRedeemItems   = bot.BucketRedeemItems
	bucketRedemptions   = bot.BucketRedemptions
	bucketRedeemMembers = bot.BucketRedeemMembers
	bucketRedeemRefs    = bot.BucketRedeemRefs
	bucketRedeemSeq     = bot.BucketRedeemSeq
)

// Redemption events.
const (
	// EventRedeem is a redemption from the member's signed page. Data: item.
	EventRedeem bot.EventType = "member.redeem"
	// EventRedeemAddress is the shipping address she gave for a gift on her
	// signed page. Data: redemption, name, phone, address.
	EventRedeemAddress bot.EventType = "member.redeem_address"
	// EventRedeemShipped is an operator marking a gift shipped (console,
	// API). Data: redemption, carrier, tracking, operator.
	EventRedeemShipped bot.EventType = "operator.redeem_shipped"
)

// Event.Data keys of redemption events.
const (
	DataItem       = "item"
	DataRedemption = "redemption"
	DataShipName   = "name"
	DataShipPhone  = "phone"
	DataShipAddr   = "address"
	DataCarrier    = "carrier"
	DataTracking   = "tracking"
)

// Redemption statuses.
const (
	RedeemDone            = "done"             // coupon or tag given
	RedeemAwaitingAddress = "awaiting_address" // a gift: she hasn't given an address yet
	RedeemToShip          = "to_ship"          // a gift with an address, not shipped yet
	RedeemShipped         = "shipped"
)

// Link purposes and paths of the member's redemption pages.
const (
	LinkPurposeRedeem  = "redeem"
	LinkPurposeAddress = "redeem_address"
	RedeemPath         = "/redeem"
	RedeemAddressPath  = "/redeem/address"
	// RedeemLinkTTL is how long a catalogue or address link stays valid.
	RedeemLinkTTL = 30 * 24 * time.Hour
)

// Redemption is one redemption.
type Redemption struct {
	ID     string    `json:"id"`
	Member string    `json:"member"`
	Item   string    `json:"item"`
	Kind   string    `json:"kind"`
	Cost   int64     `json:"cost"`
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	// Via is kf, h5, ai or level (a level's gift, free).
	Via string `json:"via"`
	Ref string `json:"ref"`
	// Coupon is the code a coupon reward gave; Tag the tag a right gave.
	Coupon string `json:"coupon,omitempty"`
	Tag    string `json:"tag,omitempty"`
	// Gift and shipping.
	Gift      string    `json:"gift,omitempty"`
	ShipName  string    `json:"ship_name,omitempty"`
	ShipPhone string    `json:"ship_phone,omitempty"`
	ShipAddr  string    `json:"ship_address,omitempty"`
	AddressAt time.Time `json:"address_at,omitzero"`
	Carrier   string    `json:"carrier,omitempty"`
	Tracking  string    `json:"tracking,omitempty"`
	ShippedAt time.Time `json:"shipped_at,omitzero"`
}

// itemState is an item's stock counter.
type itemState struct {
	Redeemed int `json:"redeemed"`
	// Alerted is set when stock fell to stock_alert (cleared above it).
	Alerted bool `json:"alerted,omitempty"`
}

// Outcomes of a redemption attempt.
const (
	redeemOK       = "ok"
	redeemReplay   = "replay"
	redeemClosed   = "closed"
	redeemAudience = "audience"
	redeemLimit    = "limit"
	redeemNoStock  = "no_stock"
	redeemNoPoints = "no_points"
	redeemNoCoupon = "no_coupon"
)

type redeemResult struct {
	outcome string
	red     *Redemption
	text    string
}

// redeemItem gives member ms the item for its cost (free: a level's gift),
// or says why not; the text is what to tell her either way.
func (r *run) redeemItem(ms *memberState, it *scenarios.RedeemItem, via string, free bool) (redeemResult, error) {
	m := ms.m
	refKey := r.ref + "|" + it.Name
	if raw, err := r.tx.Get(bucketRedeemRefs, refKey); err == nil {
		var red Redemption
		if found, err := r.getJSON(bucketRedemptions, string(raw), &red); err != nil || !found {
			return redeemResult{}, errors.Join(err, fmt.Errorf("redemption ref %s names unknown redemption", refKey))
		}
		return redeemResult{outcome: redeemReplay, red: &red, text: r.redeemText(ms, it, &red)}, nil
	} else if !errors.Is(err, bot.ErrNotFound) {
		return redeemResult{}, fmt.Errorf("read redemption ref: %w", err)
	}
	log := r.log.With().Str("item", it.Name).Str("via", via).Str("member", m.ExternalUserID).Logger()
	refuse := func(outcome, text string) (redeemResult, error) {
		log.Info().Str("outcome", outcome).Msg("redemption refused")
		r.e.metrics.Redemption(it.Name, outcome)
		return redeemResult{outcome: outcome, text: text}, nil
	}
	cost := it.Cost
	if free {
		cost = 0
	}
	zone := r.sc.Brand.Zone
	if !it.OpenAt(r.at, zone) {
		return refuse(redeemClosed, fmt.Sprintf("「%s」当前不在兑换时间内～", it.Name))
	}
	if !free && !it.For(m, r.at) {
		return refuse(redeemAudience, fmt.Sprintf("「%s」仅限指定会员兑换～", it.Name))
	}
	mine, err := r.memberRedemptions(m.ExternalUserID, it.Name)
	if err != nil {
		return redeemResult{}, err
	}
	if it.PerMember > 0 && mine >= it.PerMember {
		return refuse(redeemLimit, fmt.Sprintf("「%s」每人限兑 %d 次，你已经兑换过啦～", it.Name, it.PerMember))
	}
	var st itemState
	if _, err := r.getJSON(bucketRedeemItems, it.Name, &st); err != nil {
		return redeemResult{}, err
	}
	if it.Limited() && st.Redeemed >= it.Stock {
		return refuse(redeemNoStock, fmt.Sprintf("「%s」已经兑完啦，看看其他礼品吧～", it.Name))
	}
	if m.Points < cost {
		return refuse(redeemNoPoints, fmt.Sprintf("「%s」需要 %d 积分，你现在有 %d 积分，还差 %d 积分～", it.Name, cost, m.Points, cost-m.Points))
	}
	id, err := r.nextRedemptionID()
	if err != nil {
		return redeemResult{}, err
	}
	red := &Redemption{ID: id, Member: m.ExternalUserID, Item: it.Name, Kind: it.Kind, Cost: cost, At: r.at, Via: via, Ref: r.ref}
	switch it.Kind {
	case scenarios.RewardCoupon:
		res, err := r.issue(ms, it.Coupon, ReasonRedeemPrefix+it.Name)
		if err != nil {
			return redeemResult{}, err
		}
		if res.outcome != issueNew || res.code == nil {
			// No code to give (pool empty, ended, its own limit): nothing is taken.
			log.Warn().Str("pool", it.Coupon.Name).Str("issue", res.outcome).Msg("redemption's coupon pool gave no code; nothing redeemed")
			r.e.metrics.Redemption(it.Name, redeemNoCoupon)
			return redeemResult{outcome: redeemNoCoupon, text: fmt.Sprintf("「%s」暂时兑换不了，请稍后再试～", it.Name)}, nil
		}
		red.Coupon, red.Status = res.code.Code, RedeemDone
	case scenarios.RewardTag:
		r.addTag(ms, it.Tag)
		red.Tag, red.Status = it.Tag, RedeemDone
	case scenarios.RewardGift:
		red.Gift, red.Status = it.Gift, RedeemAwaitingAddress
	}
	if cost > 0 {
		if err := r.addPoints(ms, -cost, ReasonRedeemPrefix+it.Name, ""); err != nil {
			return redeemResult{}, err
		}
	}
	st.Redeemed++
	if it.Limited() {
		left := it.Stock - st.Redeemed
		if left <= it.StockAlert && !st.Alerted {
			st.Alerted = true
			log.Warn().Int("stock", left).Msg("catalogue item stock is low: raise redeem.items[].stock")
		}
	}
	if err := r.putJSON(bucketRedeemItems, it.Name, st); err != nil {
		return redeemResult{}, err
	}
	if err := r.putJSON(bucketRedemptions, id, red); err != nil {
		return redeemResult{}, err
	}
	if err := r.tx.Put(bucketRedeemMembers, m.ExternalUserID+"|"+it.Name+"|"+id, present); err != nil {
		return redeemResult{}, fmt.Errorf("record redemption: %w", err)
	}
	if err := r.tx.Put(bucketRedeemRefs, refKey, []byte(id)); err != nil {
		return redeemResult{}, fmt.Errorf("record redemption: %w", err)
	}
	log.Info().Str("redemption", id).Int64("cost", cost).Int64("balance", m.Points).Msg("redeemed")
	r.e.metrics.Redemption(it.Name, redeemOK)
	return redeemResult{outcome: redeemOK, red: red, text: r.redeemText(ms, it, red)}, nil
}

func (r *run) memberRedemptions(member, item string) (int, error) {
	n := 0
	err := r.tx.Scan(bucketRedeemMembers, member+"|"+item+"|", func(string, []byte) bool { n++; return true })
	return n, err
}

func (r *run) nextRedemptionID() (string, error) {
	var n uint64
	raw, err := r.tx.Get(bucketRedeemSeq, "n")
	switch {
	case err == nil && len(raw) == 8:
		n = binary.BigEndian.Uint64(raw)
	case err != nil && !errors.Is(err, bot.ErrNotFound):
		return "", fmt.Errorf("read redemption sequence: %w", err)
	}
	n++
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	if err := r.tx.Put(bucketRedeemSeq, "n", b[:]); err != nil {
		return "", fmt.Errorf("write redemption sequence: %w", err)
	}
	return fmt.Sprintf("R%06d", n), nil
}

// redeemText tells the member what she got.
func (r *run) redeemText(ms *memberState, it *scenarios.RedeemItem, red *Redemption) string {
	data := r.sc.DataFor(ms.m)
	data.Item, data.Cost = it.Name, red.Cost
	var lines []string
	if red.Cost > 0 {
		lines = append(lines, fmt.Sprintf("✅ 已用 %d 积分兑换「%s」，剩余 %d 积分。", red.Cost, it.Name, ms.m.Points))
	} else {
		lines = append(lines, fmt.Sprintf("🎁 送你「%s」！", it.Name))
	}
	switch red.Kind {
	case scenarios.RewardCoupon:
		var c CouponCode
		if found, err := r.getJSON(bucketCouponCodes, red.Coupon, &c); err == nil && found {
			lines = append(lines, "券码："+c.Code+ValidityText(&c, r.sc.Brand.Zone))
		}
	case scenarios.RewardTag:
		lines = append(lines, "权益已开通～")
	case scenarios.RewardGift:
		if link := r.link(RedeemAddressPath, LinkPurposeAddress, red.ID, RedeemLinkTTL); link != "" {
			lines = append(lines, "请在这里填写收货地址，我们尽快为你寄出："+link)
		} else {
			lines = append(lines, "请回复你的收货地址，我们尽快为你寄出。")
		}
	}
	if t := r.render(it.Text, data); t != "" {
		lines = append(lines, t)
	}
	return strings.Join(lines, "\n")
}

// redeemCommand answers 兑换 (the list she can afford) and 兑换 <item> in
// 微信客服.
func (r *run) redeemCommand(ms *memberState, surface, text string) (bool, error) {
	cat := r.sc.Redeem
	if cat == nil || ms == nil || surface != scenarios.SurfaceKf {
		return false, nil
	}
	rest, ok := cat.Command(text)
	if !ok {
		return false, nil
	}
	var reply string
	if rest == "" {
		var err error
		if reply, err = r.catalogueText(ms); err != nil {
			return true, err
		}
	} else {
		it := cat.Item(rest)
		if it == nil {
			reply = fmt.Sprintf("没有找到「%s」，回复「%s」看看能兑换什么～", rest, cat.Keywords[0])
		} else {
			res, err := r.redeemItem(ms, it, "kf", false)
			if err != nil {
				return true, err
			}
			reply = res.text
		}
	}
	return true, r.kfReply(ms, reply, r.ev.OpenKfID, false)
}

// catalogueText lists the items open to the member, those she can afford first.
func (r *run) catalogueText(ms *memberState) (string, error) {
	cat := r.sc.Redeem
	var can, cannot []string
	for i, it := range cat.Items {
		if !it.OpenAt(r.at, r.sc.Brand.Zone) || !it.For(ms.m, r.at) {
			continue
		}
		var st itemState
		if _, err := r.getJSON(bucketRedeemItems, it.Name, &st); err != nil {
			return "", err
		}
		line := fmt.Sprintf("%d. %s · %d 积分", i+1, it.Name, it.Cost)
		if it.Limited() {
			if left := it.Stock - st.Redeemed; left <= 0 {
				continue
			} else if left <= 10 {
				line += fmt.Sprintf("（仅剩 %d）", left)
			}
		}
		if ms.m.Points >= it.Cost {
			can = append(can, line)
		} else {
			cannot = append(cannot, line+fmt.Sprintf("（还差 %d）", it.Cost-ms.m.Points))
		}
	}
	kw := cat.Keywords[0]
	var b strings.Builder
	fmt.Fprintf(&b, "你现在有 %d 积分。", ms.m.Points)
	if len(can) > 0 {
		b.WriteString("\n可以兑换：\n" + strings.Join(can, "\n"))
		fmt.Fprintf(&b, "\n回复「%s 名称」或「%s 序号」即可兑换，如「%s 1」。", kw, kw, kw)
	} else {
		b.WriteString("\n暂时还没有够积分兑换的礼品，继续加油～")
	}
	if len(cannot) > 0 {
		b.WriteString("\n再攒攒就能换：\n" + strings.Join(cannot, "\n"))
	}
	if link := r.link(RedeemPath, LinkPurposeRedeem, ms.m.ExternalUserID, RedeemLinkTTL); link != "" {
		b.WriteString("\n积分商城：" + link)
	}
	return b.String(), nil
}

// redeemTap handles a redemption from the member's signed page: the
// answer is kept for the page (and sent in 微信客服 when she wrote there lately).
func (r *run) redeemTap() error {
	it := r.sc.Redeem.Item(r.ev.Data[DataItem])
	ms, err := r.member(r.ev.ExternalUserID, false)
	if err != nil {
		return err
	}
	var text string
	switch {
	case ms == nil:
		text = "没有找到你的会员信息，请先添加客服。"
	case it == nil || it.Name != r.ev.Data[DataItem]:
		text = "这个礼品已经下架了，看看其他礼品吧～"
	default:
		res, err := r.redeemItem(ms, it, "h5", false)
		if err != nil {
			return err
		}
		text = res.text
		if res.outcome == redeemOK {
			if err := r.kfReply(ms, text, "", false); err != nil {
				return err
			}
		}
	}
	return checkin.SaveResult(r.tx, r.resultKey(), text)
}

// redeemAddress stores the shipping address she gave for a gift.
func (r *run) redeemAddress() error {
	var red Redemption
	id := r.ev.Data[DataRedemption]
	found, err := r.getJSON(bucketRedemptions, id, &red)
	if err != nil {
		return err
	}
	var text string
	switch {
	case !found || red.Member != r.ev.ExternalUserID || red.Kind != scenarios.RewardGift:
		text = "没有找到这次兑换。"
	case red.Status == RedeemShipped:
		text = "礼品已经寄出，地址不能再改了；有问题请联系客服。"
	default:
		red.ShipName, red.ShipPhone, red.ShipAddr = r.ev.Data[DataShipName], r.ev.Data[DataShipPhone], r.ev.Data[DataShipAddr]
		red.AddressAt, red.Status = r.at, RedeemToShip
		if err := r.putJSON(bucketRedemptions, id, red); err != nil {
			return err
		}
		r.log.Info().Str("redemption", id).Msg("gift shipping address given")
		text = fmt.Sprintf("收货地址已保存：%s %s %s。我们会尽快寄出「%s」，发货后通知你～", red.ShipName, red.ShipPhone, red.ShipAddr, red.Item)
	}
	return checkin.SaveResult(r.tx, r.resultKey(), text)
}

// redeemShipped marks a gift shipped and tells the member.
func (r *run) redeemShipped() error {
	var red Redemption
	id := r.ev.Data[DataRedemption]
	found, err := r.getJSON(bucketRedemptions, id, &red)
	if err != nil {
		return err
	}
	outcome := ""
	switch {
	case !found || red.Kind != scenarios.RewardGift:
		outcome = "unknown gift redemption"
	case red.Status == RedeemShipped:
		outcome = "already shipped"
	case red.Status == RedeemAwaitingAddress:
		outcome = "no shipping address yet"
	}
	if outcome != "" {
		r.log.Warn().Str("redemption", id).Str("refused", outcome).Msg("mark shipped refused")
		return r.putJSON(bucketRedeemRefs, "op|"+r.resultKey(), map[string]string{"refused": outcome})
	}
	red.Status, red.ShippedAt, red.Carrier, red.Tracking = RedeemShipped, r.at, r.ev.Data[DataCarrier], r.ev.Data[DataTracking]
	if err := r.putJSON(bucketRedemptions, id, red); err != nil {
		return err
	}
	if err := r.putJSON(bucketRedeemRefs, "op|"+r.resultKey(), map[string]string{"status": RedeemShipped}); err != nil {
		return err
	}
	ms, err := r.member(red.Member, false)
	if err != nil || ms == nil {
		return err
	}
	data := r.sc.DataFor(ms.m)
	data.Item, data.Tracking = red.Item, strings.TrimSpace(red.Carrier+" "+red.Tracking)
	r.log.Info().Str("redemption", id).Msg("gift shipped")
	var shipped *scenarios.Template
	if r.sc.Redeem != nil {
		shipped = r.sc.Redeem.Shipped
	}
	return r.deliverCoupon(ms, "shipped|"+id, r.render(shipped, data))
}

// ---- read models ----

// LoadRedemption returns one redemption, or nil.
func LoadRedemption(tx bot.Tx, id string) (*Redemption, error) {
	var red Redemption
	found, err := readJSON(tx, bucketRedemptions, id, &red)
	if err != nil || !found {
		return nil, err
	}
	return &red, nil
}

// ShippedOutcome returns the engine's answer to a mark-shipped request
// (keyed by its event's dedupe key): refused is set when it was refused;
// found is false until the engine applied it.
func ShippedOutcome(tx bot.Tx, key string) (refused string, found bool, err error) {
	var out map[string]string
	found, err = readJSON(tx, bucketRedeemRefs, "op|"+key, &out)
	return out["refused"], found, err
}

// Redemptions returns up to limit redemptions after id after (""; from the
// start), oldest first; status filters ("" all).
func Redemptions(tx bot.Tx, after, status string, limit int) ([]Redemption, error) {
	var out []Redemption
	var derr error
	err := tx.Scan(bucketRedemptions, "", func(k string, v []byte) bool {
		if k <= after {
			return true
		}
		var red Redemption
		if derr = json.Unmarshal(v, &red); derr != nil {
			return false
		}
		if status == "" || red.Status == status {
			out = append(out, red)
		}
		return len(out) < limit
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// MemberRedemptions returns the member's redemptions, oldest first.
func MemberRedemptions(tx bot.Tx, member string) ([]Redemption, error) {
	var ids []string
	if err := tx.Scan(bucketRedeemMembers, member+"|", func(k string, _ []byte) bool {
		ids = append(ids, k[strings.LastIndexByte(k, '|')+1:])
		return true
	}); err != nil {
		return nil, err
	}
	out := make([]Redemption, 0, len(ids))
	for _, id := range ids {
		red, err := LoadRedemption(tx, id)
		if err != nil {
			return nil, err
		}
		if red != nil {
			out = append(out, *red)
		}
	}
	return out, nil
}

// ItemStock is a catalogue item's standing.
type ItemStock struct {
	Item     string `json:"item"`
	Kind     string `json:"kind"`
	Cost     int64  `json:"cost"`
	Redeemed int    `json:"redeemed"`
	// Stock is the total (-1: unlimited); Left what remains (-1: unlimited).
	Stock int `json:"stock"`
	Left  int `json:"left"`
	// Alert is set when Left is at or below the item's stock_alert.
	Alert bool `json:"alert"`
}

// CatalogueStock returns every item of sc's catalogue with its counts, in file order.
func CatalogueStock(tx bot.Tx, sc *scenarios.Scenario) ([]ItemStock, error) {
	if sc.Redeem == nil {
		return nil, nil
	}
	out := make([]ItemStock, 0, len(sc.Redeem.Items))
	for _, it := range sc.Redeem.Items {
		var st itemState
		if _, err := readJSON(tx, bucketRedeemItems, it.Name, &st); err != nil {
			return nil, err
		}
		s := ItemStock{Item: it.Name, Kind: it.Kind, Cost: it.Cost, Redeemed: st.Redeemed, Stock: it.Stock, Left: -1}
		if it.Limited() {
			s.Left = max(it.Stock-st.Redeemed, 0)
			s.Alert = s.Left <= it.StockAlert
		}
		out = append(out, s)
	}
	return out, nil
}
