package wecomapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/silenceper/wechat/v2/work/externalcontact"
)

// tagResolver maps corp tag names to ids. Lookups read an immutable index
// without locking; misses serialize on mu, refresh the index from
// get_corp_tag_list and create what is still missing with one add_corp_tag,
// so concurrent senders create a tag once.
type tagResolver struct {
	c     *Client
	mu    sync.Mutex
	index atomic.Pointer[tagIndex]
	// refreshed is when the index was last loaded (guarded by mu).
	refreshed time.Time
}

// tagRefreshInterval limits refreshes caused by names that are looked up but
// never created (tags to remove that don't exist).
const tagRefreshInterval = time.Minute

// tagIndex is a snapshot of the corp tag library.
type tagIndex struct {
	// byGroup maps group name → tag name → tag id.
	byGroup map[string]map[string]string
	// groupIDs maps group name → group id.
	groupIDs map[string]string
	// anyGroup maps tag name → id of the first group (in WeCom's order) holding it.
	anyGroup map[string]string
}

func newTagResolver(c *Client) *tagResolver {
	r := &tagResolver{c: c}
	r.index.Store(buildTagIndex(nil))
	return r
}

func buildTagIndex(groups []externalcontact.TagGroup) *tagIndex {
	ix := &tagIndex{byGroup: map[string]map[string]string{}, groupIDs: map[string]string{}, anyGroup: map[string]string{}}
	for _, g := range groups {
		ix.add(g)
	}
	return ix
}

func (ix *tagIndex) add(g externalcontact.TagGroup) {
	if g.Deleted {
		return
	}
	if g.GroupID != "" {
		ix.groupIDs[g.GroupName] = g.GroupID
	}
	names := ix.byGroup[g.GroupName]
	if names == nil {
		names = map[string]string{}
		ix.byGroup[g.GroupName] = names
	}
	for _, t := range g.Tag {
		if t.Deleted || t.ID == "" {
			continue
		}
		names[t.Name] = t.ID
		if _, ok := ix.anyGroup[t.Name]; !ok {
			ix.anyGroup[t.Name] = t.ID
		}
	}
}

func (ix *tagIndex) clone() *tagIndex {
	out := &tagIndex{byGroup: map[string]map[string]string{}, groupIDs: map[string]string{}, anyGroup: map[string]string{}}
	for g, names := range ix.byGroup {
		m := make(map[string]string, len(names))
		for n, id := range names {
			m[n] = id
		}
		out.byGroup[g] = m
	}
	for k, v := range ix.groupIDs {
		out.groupIDs[k] = v
	}
	for k, v := range ix.anyGroup {
		out.anyGroup[k] = v
	}
	return out
}

// lookup prefers the tag in group, then the same name in any group.
func (ix *tagIndex) lookup(group string, names []string) (ids []string, missing []string) {
	for _, name := range names {
		if id, ok := ix.byGroup[group][name]; ok {
			ids = append(ids, id)
		} else if id, ok := ix.anyGroup[name]; ok {
			ids = append(ids, id)
		} else {
			missing = append(missing, name)
		}
	}
	return ids, missing
}

// resolve returns the ids of names (duplicates removed). With create, names
// that exist nowhere are created in group; without, they are left out.
func (r *tagResolver) resolve(ctx context.Context, group string, names []string, create bool) ([]string, error) {
	names = uniqueNonEmpty(names)
	if len(names) == 0 {
		return nil, nil
	}
	if group == "" {
		group = r.c.cfg.TagGroup
	}
	ids, missing := r.index.Load().lookup(group, names)
	if len(missing) == 0 {
		return ids, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Another sender may have filled the index while we waited.
	if ids, missing = r.index.Load().lookup(group, names); len(missing) == 0 {
		return ids, nil
	}
	if !create && !r.refreshed.IsZero() && r.c.now().Sub(r.refreshed) < tagRefreshInterval {
		return ids, nil
	}
	if err := r.refreshLocked(ctx); err != nil {
		return nil, err
	}
	if ids, missing = r.index.Load().lookup(group, names); len(missing) == 0 || !create {
		return ids, nil
	}
	if err := r.createLocked(ctx, group, missing); err != nil {
		return nil, err
	}
	ids, missing = r.index.Load().lookup(group, names)
	if len(missing) > 0 {
		return nil, fmt.Errorf("corp tags %q still missing after add_corp_tag in group %q", missing, group)
	}
	return ids, nil
}

// refresh reloads the tag library.
func (r *tagResolver) refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refreshLocked(ctx)
}

func (r *tagResolver) refreshLocked(ctx context.Context) error {
	var groups []externalcontact.TagGroup
	err := r.c.call(ctx, apiGetCorpTagList, func() (err error) {
		groups, err = r.c.contact.GetCropTagList(externalcontact.GetCropTagRequest{})
		return err
	})
	if err != nil {
		return fmt.Errorf("list corp tags: %w", err)
	}
	r.index.Store(buildTagIndex(groups))
	r.refreshed = r.c.now()
	return nil
}

func (r *tagResolver) createLocked(ctx context.Context, group string, names []string) error {
	ix := r.index.Load()
	req := externalcontact.AddCropTagRequest{GroupID: ix.groupIDs[group], GroupName: group}
	for _, name := range names {
		req.Tag = append(req.Tag, externalcontact.AddCropTagItem{Name: name})
	}
	var created *externalcontact.TagGroup
	err := r.c.call(ctx, apiAddCorpTag, func() (err error) {
		created, err = r.c.contact.AddCropTag(req)
		return err
	})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == CodeTagNameExists {
		// Someone else (the admin console, another process) created it meanwhile.
		return r.refreshLocked(ctx)
	}
	if err != nil {
		return fmt.Errorf("create corp tags %q in group %q: %w", names, group, err)
	}
	r.c.log.Info().Str("group", group).Strs("tags", names).Msg("created corp tags")
	next := ix.clone()
	if created != nil {
		if created.GroupName == "" {
			created.GroupName = group
		}
		next.add(*created)
	}
	r.index.Store(next)
	return nil
}

func uniqueNonEmpty(in []string) []string {
	seen := make(map[string]bool, len(in))
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
