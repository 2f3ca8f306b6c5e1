package bot

// Order events, appended by the shop webhook (SourceShop) or an operator.
// ExternalUserID names the member; the order travels in Event.Data under
// the Data* keys below (amounts in fen, as decimal strings).
const (
	// EventOrderPaid: an order was paid. Data: order_id, amount_fen; optional coupon_code, unionid.
	EventOrderPaid EventType = "order.paid"
	// EventOrderRefunded: money was refunded on a paid order. Data: order_id,
	// amount_fen (omitted: the rest of the order); optional refund_id, which
	// makes several partial refunds of one order distinct.
	EventOrderRefunded EventType = "order.refunded"
)

// Event.Data keys of order events.
const (
	DataOrderID    = "order_id"
	DataAmountFen  = "amount_fen"
	DataRefundID   = "refund_id"
	DataCouponCode = "coupon_code"
	DataUnionID    = "unionid"
	// DataName is the member's name when the source knows it (simulator, enrichment).
	DataName = "name"
)
