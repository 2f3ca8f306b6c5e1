package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Route is one entry of the route table; tests walk it to prove every admin
// route demands authentication.
type Route struct {
	Pattern string
	Admin   bool
	Handler http.HandlerFunc
}

// Routes lists every route the server answers, in one place.
func (s *Server) Routes() []Route {
	return []Route{
		{"GET /wecom/callback", false, s.callbackVerify},
		{"POST /wecom/callback", false, s.callbackEvent},
		{"GET /wecom/aibot", false, s.aibotVerify},
		{"POST /wecom/aibot", false, s.aibotEvent},
		{"GET /healthz", false, s.healthz},
		{"GET /metrics", false, s.metrics()},

		// The API's own description carries no data: no token.
		{"GET /api/v1/openapi.json", false, s.apiOpenAPI()},
		{"GET /api/v1/status", true, s.apiStatus},
		{"GET /api/v1/backup", true, s.apiBackup},
		{"GET /api/v1/events", true, s.apiEvents},
		{"GET /api/v1/events/failed", true, s.apiFailedEvents},
		{"POST /api/v1/events/retry", true, s.apiRetryEvents},
		{"POST /api/v1/events/{seq}/retry", true, s.apiRetryEvents},
		{"GET /api/v1/outbox", true, s.apiOutbox},
		{"GET /api/v1/members", true, s.apiMembers},
		{"GET /api/v1/members/{external_userid}", true, s.apiMember},
		{"PUT /api/v1/members/{external_userid}/profile", true, s.apiMemberProfile},
		{"GET /api/v1/channels", true, s.apiChannels},
		{"POST /api/v1/channels/{state}/contact_way", true, s.apiCreateContactWay},
		{"GET /api/v1/funnel", true, s.apiFunnel},
		{"GET /api/v1/metrics", true, s.apiMetrics},
		{"GET /api/v1/segments", true, s.apiSegments},
		{"POST /api/v1/segments/count", true, s.apiSegmentCount},
		{"GET /api/v1/segments/{name}", true, s.apiSegment},
		{"GET /api/v1/segments/{name}/members", true, s.apiSegmentMembers},
		{"GET /api/v1/sync", true, s.apiSync},
		{"POST /api/v1/sync", true, s.apiSyncStart},
		{"GET /api/v1/transfers", true, s.apiTransfers},
		{"POST /api/v1/transfers", true, s.apiTransferCreate},
		{"GET /api/v1/transfers/unassigned", true, s.apiUnassigned},
		{"GET /api/v1/transfers/{id}", true, s.apiTransfer},
		{"GET /api/v1/campaigns", true, s.apiCampaigns},
		{"GET /api/v1/broadcasts", true, s.apiBroadcasts},
		{"POST /api/v1/broadcasts", true, s.apiBroadcastCreate},
		{"GET /api/v1/broadcasts/{id}", true, s.apiBroadcast},
		{"GET /api/v1/sops", true, s.apiSOPs},
		{"GET /api/v1/sops/{name}", true, s.apiSOP},
		{"POST /api/v1/sops/{name}/pause", true, s.apiSOPState},
		{"POST /api/v1/sops/{name}/resume", true, s.apiSOPState},
		{"GET /api/v1/coupons", true, s.apiCoupons},
		{"GET /api/v1/scenarios", true, s.apiScenarios},
		{"POST /api/v1/scenarios/validate", true, s.apiValidateScenario},
		{"POST /api/v1/scenarios/reload", true, s.apiReloadScenario},
		{"POST /api/v1/scenarios/simulate", true, s.apiSimulateScenario},
		{"GET /api/v1/operations", true, s.apiOperations},
		{"POST /api/v1/outbox/{id}/retry", true, s.apiRetryAction},
		{"GET /api/v1/export/members.csv", true, s.exportMembers("csv")},
		{"GET /api/v1/export/members.xlsx", true, s.exportMembers("xlsx")},
		{"GET /api/v1/export/orders.csv", true, s.exportOrders("csv")},
		{"GET /api/v1/export/orders.xlsx", true, s.exportOrders("xlsx")},
		{"POST /api/v1/sandbox/events", true, s.apiSandboxEvent},
		{"POST /api/v1/coupons/{pool}/import", true, s.apiCouponImport},
		{"POST /api/v1/coupons/{pool}/generate", true, s.apiCouponGenerate},
		{"POST /api/v1/coupons/{pool}/grant", true, s.apiCouponGrant},
		{"GET /api/v1/economy", true, s.apiEconomy},
		{"GET /api/v1/redemptions", true, s.apiRedemptions},
		{"POST /api/v1/redemptions/{id}/shipped", true, s.apiRedemptionShipped},

		{"POST /hooks/orders", false, s.shopOrders},
		{"GET /coupons", false, s.couponsPage},

		// Members' check-in pages: the signed link in ?t= is the credential.
		{"GET /checkin", false, s.checkinPage},
		{"POST /checkin", false, s.checkinPost},
		{"GET /checkin/cert", false, s.checkinCertPage},
		{"GET /checkin/cert.png", false, s.checkinCertPNG},
		// The member's 任务宝 poster page and picture; the signed link is the credential.
		{"GET /poster", false, s.posterPage},
		{"GET /poster.png", false, s.posterPNG},
		{"GET /api/v1/posters", true, s.apiPosters},
		// The member's profile form (问卷); the signed link is the credential.
		{"GET /profile", false, s.profilePage},
		{"POST /profile", false, s.profilePost},

		// Members' catalogue (积分商城) and gift address pages: the signed link is the credential.
		{"GET /redeem", false, s.redeemPage},
		{"POST /redeem", false, s.redeemPost},
		{"GET /redeem/address", false, s.redeemAddressPage},
		{"POST /redeem/address", false, s.redeemAddressPost},

		// The dashboard's page and static assets carry no data: no token.
		{"GET /{$}", false, s.dashboardIndex},
		{"GET /assets/{file}", false, s.dashboardAsset},
	}
}

func (s *Server) routes() {
	for _, rt := range s.Routes() {
		h := rt.Handler
		if rt.Admin {
			h = s.requireAdmin(h)
		}
		s.mux.HandleFunc(rt.Pattern, h)
	}
}

func (s *Server) metrics() http.HandlerFunc {
	if s.o.Metrics == nil {
		return func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
	}
	h := promhttp.HandlerFor(s.o.Metrics.Registry, promhttp.HandlerOpts{})
	return h.ServeHTTP
}
