package bot

// Silent members and loss alerts (流失提醒).
const (
	// EventMemberSilent: the hourly sweep (bot/sweep) found the member
	// without activity for the scenario's silent.days; Data: DataLastActive
	// (RFC 3339). The engine checks again before marking her silent.
	EventMemberSilent EventType = "member.silent"
	// EventLossDigest: the daily loss digest is due (loss_alerts.digest_at);
	// Data: DataDay, the day (YYYY-MM-DD, brand zone) it covers.
	EventLossDigest EventType = "loss.digest"
)

// Data keys of silent and digest events.
const (
	DataLastActive = "last_active"
	DataDay        = "day"
)

// IsSilent reports whether the member is marked silent.
func (m *Member) IsSilent() bool { return !m.SilentSince.IsZero() }
