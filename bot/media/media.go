// Package media is wecombot's media library: scenarios attach files and
// URLs (image: {file: images/menu.png}), and before an action reaches WeCom
// the library turns each into what WeCom accepts — a permanent pic_url from
// media/uploadimg for pictures, or a media_id from media/upload, which WeCom
// keeps only three days ("仅三天内有效"). Uploads are remembered in storage
// (source → content hash, media id or URL, uploaded at) so a file is
// uploaded once, again when it changes, and again before its media_id
// expires.
//
// The media records are the sender's cache of what WeCom holds, like the
// access token or the tag library, not domain state: the engine never reads
// them.
package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/wecombot/wecombot/bot"
)

// Lifetime is how long WeCom keeps a media/upload media_id.
const Lifetime = 72 * time.Hour

// DefaultRenewBefore is how long before expiry a media_id is replaced: a
// welcome that names it must still find it valid when WeCom reads it.
const DefaultRenewBefore = 12 * time.Hour

// Bucket is the storage bucket (bot.Tx key-value) holding media records.
const Bucket = bot.BucketMedia

// ErrUnreadable wraps a final error: the file is gone or the URL answered
// with something WeCom would refuse. Sending again won't help.
var ErrUnreadable = errors.New("media unreadable")

// Uploader puts media into WeCom (wecomapi.Client implements it).
type Uploader interface {
	// UploadImage uploads a JPG/PNG picture (media/uploadimg) and returns its permanent URL.
	UploadImage(ctx context.Context, name string, data []byte) (url string, err error)
	// UploadMedia uploads temporary media of kind image, video or file
	// (media/upload) and returns its media_id, valid 3 days.
	UploadMedia(ctx context.Context, kind, name string, data []byte) (mediaID string, err error)
}

// Record is what the library remembers about one uploaded source.
type Record struct {
	Source string `json:"source"`
	Kind   string `json:"kind"`
	SHA256 string `json:"sha256"`
	// MediaID (temporary, 3 days) or PicURL (permanent) is what WeCom gave.
	MediaID    string    `json:"media_id,omitempty"`
	PicURL     string    `json:"pic_url,omitempty"`
	UploadedAt time.Time `json:"uploaded_at"`
}

// Library resolves media references. Safe for concurrent use.
type Library struct {
	Store    bot.Store
	Uploader Uploader
	// Open reads a scenario file (scenarios.ReadMedia).
	Open func(source string) ([]byte, error)
	// Fetch downloads an https URL (through the egress proxy in production).
	Fetch func(ctx context.Context, url string) ([]byte, error)
	// Render draws generated pictures (a member's 任务宝 poster, MediaRef.Poster);
	// nil: such media is unreadable.
	Render func(ctx context.Context, ref *bot.MediaRef) ([]byte, error)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RenewBefore replaces a media_id this long before it expires (default DefaultRenewBefore).
	RenewBefore time.Duration
	Log         zerolog.Logger

	// mu serializes uploads so concurrent senders upload a source once.
	mu sync.Mutex
	// forgotten marks records dropped after WeCom refused their media id (guarded by mu).
	forgotten map[string]bool
}

func (l *Library) now() time.Time {
	if l.Now == nil {
		return time.Now()
	}
	return l.Now()
}

func (l *Library) renewBefore() time.Duration {
	if l.RenewBefore <= 0 {
		return DefaultRenewBefore
	}
	return l.RenewBefore
}

// recordKey names a source's record: the same file may be uploaded both as
// a permanent picture and as temporary media (a mini-program cover).
func recordKey(ref *bot.MediaRef) string {
	mode := "media"
	if ref.Permanent {
		mode = "img"
	}
	return mode + "|" + ref.Kind + "|" + ref.Source
}

// Resolve returns a with its Media reference replaced by the media id or
// picture URL WeCom holds now, uploading when there is none, the content
// changed or the media_id is within RenewBefore of expiry. note says what
// was uploaded ("" when nothing was).
func (l *Library) Resolve(ctx context.Context, a bot.Attachment) (out bot.Attachment, note string, err error) {
	ref := a.Media
	if ref == nil {
		return a, "", nil
	}
	rec, note, err := l.ensure(ctx, ref, false)
	if err != nil {
		return a, "", err
	}
	out = a
	out.Media = nil
	if rec.PicURL != "" {
		out.PicURL, out.MediaID = rec.PicURL, ""
	} else {
		out.MediaID, out.PicURL = rec.MediaID, ""
	}
	return out, note, nil
}

// Keep uploads what refs name that WeCom doesn't hold fresh (first use,
// changed content, media_id near expiry), so sends find it ready; serve runs
// it at start and then periodically. It returns the notes of what it
// uploaded and the first error (it carries on past failures).
func (l *Library) Keep(ctx context.Context, refs []bot.MediaRef) (notes []string, firstErr error) {
	seen := map[string]bool{}
	for i := range refs {
		ref := &refs[i]
		if seen[recordKey(ref)] {
			continue
		}
		seen[recordKey(ref)] = true
		_, note, err := l.ensure(ctx, ref, ref.URL)
		if err != nil {
			l.Log.Warn().Err(err).Str("source", ref.Source).Msg("media: could not upload")
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if note != "" {
			notes = append(notes, note)
		}
	}
	return notes, firstErr
}

// ensure returns a fresh record for ref. A file is read each time (cheap,
// and it catches edits); a URL is fetched only when its record is due, or
// when refetch asks to look for new content.
func (l *Library) ensure(ctx context.Context, ref *bot.MediaRef, refetch bool) (Record, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := recordKey(ref)
	prev, found, err := l.load(ctx, key)
	if err != nil {
		return Record{}, "", err
	}
	now := l.now()
	fresh := found && (prev.PicURL != "" || now.Sub(prev.UploadedAt) < Lifetime-l.renewBefore())
	var data []byte
	if ref.Poster != nil {
		// Drawn now: her name or code may have changed; the hash below
		// decides whether WeCom needs it again.
		if l.Render == nil {
			return Record{}, "", fmt.Errorf("%w: %s: no poster renderer", ErrUnreadable, ref.Source)
		}
		if data, err = l.Render(ctx, ref); err != nil {
			return Record{}, "", fmt.Errorf("render %s: %w", ref.Source, err)
		}
	} else if ref.URL {
		if fresh && !refetch {
			return prev, "", nil
		}
		if data, err = l.Fetch(ctx, ref.Source); err != nil {
			return Record{}, "", fmt.Errorf("fetch %s: %w", ref.Source, err)
		}
	} else {
		if data, err = l.Open(ref.Source); err != nil {
			return Record{}, "", fmt.Errorf("%w: %s: %v", ErrUnreadable, ref.Source, err)
		}
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if fresh && prev.SHA256 == hash {
		return prev, "", nil
	}
	why := "first upload"
	switch {
	case !found && l.forgotten[key]:
		why = "WeCom refused the last media id as expired"
	case found && prev.SHA256 != hash:
		why = "content changed"
	case found:
		why = fmt.Sprintf("renewing: uploaded %s ago, WeCom keeps media 3 days", now.Sub(prev.UploadedAt).Round(time.Minute))
	}
	rec := Record{Source: ref.Source, Kind: ref.Kind, SHA256: hash, UploadedAt: now}
	api := "media/upload"
	if ref.Permanent && len(data) <= 2<<20 && isJPGOrPNG(data) {
		api = "media/uploadimg"
		rec.PicURL, err = l.Uploader.UploadImage(ctx, ref.Name, data)
	} else {
		rec.MediaID, err = l.Uploader.UploadMedia(ctx, ref.Kind, ref.Name, data)
	}
	if err != nil {
		return Record{}, "", fmt.Errorf("upload %s (%s): %w", ref.Name, api, err)
	}
	if err := l.save(ctx, key, rec); err != nil {
		return Record{}, "", err
	}
	delete(l.forgotten, key)
	note := fmt.Sprintf("uploaded %s with %s (%s)", ref.Name, api, why)
	l.Log.Info().Str("source", ref.Source).Str("api", api).Str("why", why).Msg("media uploaded")
	return rec, note, nil
}

func isJPGOrPNG(data []byte) bool {
	return strings.HasPrefix(string(data), "\x89PNG\r\n\x1a\n") || strings.HasPrefix(string(data), "\xff\xd8\xff")
}

// Forget drops the media_id the library holds for ref, so the next use
// uploads it. Permanent picture URLs are kept: they don't expire.
func (l *Library) Forget(ctx context.Context, ref *bot.MediaRef) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := recordKey(ref)
	if rec, found, err := l.load(ctx, key); err != nil || (found && rec.PicURL != "") {
		return err
	}
	if err := l.Store.Update(ctx, func(tx bot.Tx) error { return tx.Delete(Bucket, key) }); err != nil {
		return fmt.Errorf("forget media record: %w", err)
	}
	if l.forgotten == nil {
		l.forgotten = map[string]bool{}
	}
	l.forgotten[key] = true
	return nil
}

func (l *Library) load(ctx context.Context, key string) (Record, bool, error) {
	var rec Record
	var found bool
	err := l.Store.View(ctx, func(tx bot.Tx) error {
		raw, err := tx.Get(Bucket, key)
		if errors.Is(err, bot.ErrNotFound) || raw == nil {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return json.Unmarshal(raw, &rec)
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("read media record: %w", err)
	}
	return rec, found, nil
}

func (l *Library) save(ctx context.Context, key string, rec Record) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := l.Store.Update(ctx, func(tx bot.Tx) error { return tx.Put(Bucket, key, raw) }); err != nil {
		return fmt.Errorf("store media record: %w", err)
	}
	return nil
}

// Sender resolves the media of welcome, mass-send and group welcome actions
// before Next delivers them.
type Sender struct {
	Next bot.Sender
	Lib  *Library
	// Classify says whether an upload error is worth retrying (wecomapi.Classify).
	Classify func(error) bool
	// Stale reports WeCom refusing a media id as invalid or expired (40007):
	// the records are forgotten, the media uploaded again and the action
	// sent once more — WeCom's clock, not ours, decides when media expire.
	Stale func(error) bool
}

// HoldUntil passes the next sender's throttle hold through (the pipeline's
// Holder): the relay leaves an action whose API is held in the outbox.
func (s *Sender) HoldUntil(a *bot.Action) time.Time { return bot.HoldUntilOf(s.Next, a) }

// SendLimit passes the next sender's per-API concurrency through (the
// pipeline's Limiter).
func (s *Sender) SendLimit(a *bot.Action) (string, int) { return bot.SendLimitOf(s.Next, a) }

// Send implements bot.Sender.
func (s *Sender) Send(ctx context.Context, a *bot.Action) (bot.SendResult, bool, error) {
	resolved, notes, err := s.resolveAction(ctx, a, false)
	if err != nil {
		return bot.SendResult{}, s.retryable(err), fmt.Errorf("%s action %d: media: %w", a.Kind, a.ID, err)
	}
	res, retry, err := s.Next.Send(ctx, resolved)
	if err != nil && resolved != a && s.Stale != nil && s.Stale(err) {
		s.Lib.Log.Warn().Err(err).Uint64("action", a.ID).Msg("media: WeCom refused a media id as expired; uploading again and retrying once")
		again, moreNotes, rerr := s.resolveAction(ctx, a, true)
		if rerr != nil {
			return bot.SendResult{}, s.retryable(rerr), fmt.Errorf("%s action %d: media: %w", a.Kind, a.ID, rerr)
		}
		notes = append(notes, moreNotes...)
		res, retry, err = s.Next.Send(ctx, again)
	}
	if err == nil && len(notes) > 0 {
		res.Detail = strings.TrimSpace(res.Detail + "; " + strings.Join(notes, "; "))
	}
	return res, retry, err
}

func (s *Sender) retryable(err error) bool {
	return !errors.Is(err, ErrUnreadable) && s.Classify != nil && s.Classify(err)
}

// resolveAction returns a copy of a with its media resolved (a itself when it
// has none); with force, every record is uploaded again.
func (s *Sender) resolveAction(ctx context.Context, a *bot.Action, force bool) (*bot.Action, []string, error) {
	var atts *[]bot.Attachment
	var payload any
	switch a.Kind {
	case bot.ActionWelcome:
		var p bot.WelcomeMessage
		payload, atts = &p, &p.Attachments
	case bot.ActionMassSend:
		var p bot.MassSend
		payload, atts = &p, &p.Attachments
	case bot.ActionGroupWelcome:
		var p bot.GroupWelcome
		payload, atts = &p, &p.Attachments
	case bot.ActionKfMessage:
		// A picture in 微信客服 (a 任务宝 poster): one attachment, Image.
		var p bot.KfMessage
		payload = &p
		if !hasMedia(a.Payload) {
			return a, nil, nil
		}
		if err := a.Decode(payload); err != nil {
			return nil, nil, err
		}
		if p.Image == nil {
			return a, nil, nil
		}
		one := []bot.Attachment{*p.Image}
		notes, err := s.resolveAll(ctx, one, force)
		if err != nil {
			return nil, nil, err
		}
		p.Image = &one[0]
		return withPayload(a, payload, notes)
	default:
		return a, nil, nil
	}
	if !hasMedia(a.Payload) {
		return a, nil, nil
	}
	if err := a.Decode(payload); err != nil {
		return nil, nil, err
	}
	notes, err := s.resolveAll(ctx, *atts, force)
	if err != nil {
		return nil, nil, err
	}
	return withPayload(a, payload, notes)
}

// resolveAll resolves atts in place; with force, every record is uploaded again.
func (s *Sender) resolveAll(ctx context.Context, atts []bot.Attachment, force bool) ([]string, error) {
	var notes []string
	for i, att := range atts {
		if force && att.Media != nil {
			if err := s.Lib.Forget(ctx, att.Media); err != nil {
				return nil, err
			}
		}
		out, note, err := s.Lib.Resolve(ctx, att)
		if err != nil {
			return nil, err
		}
		atts[i] = out
		if note != "" {
			notes = append(notes, note)
		}
	}
	return notes, nil
}

// withPayload is a copy of a carrying payload.
func withPayload(a *bot.Action, payload any, notes []string) (*bot.Action, []string, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, nil, err
	}
	cp := *a
	cp.Payload = raw
	return &cp, notes, nil
}

// hasMedia is a cheap pre-check so actions without media skip the decode.
func hasMedia(payload []byte) bool { return strings.Contains(string(payload), `"media":{`) }
