package server

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/wecombot/wecombot/bot"
	"github.com/wecombot/wecombot/bot/engine"
	"github.com/wecombot/wecombot/scenarios"
)

// Exports of members and orders, as CSV (UTF-8 with BOM) and as .xlsx,
// because operators open them in Excel or WPS. Headers, stage names and
// yes/no are in 中文 unless ?lang=en; times are wall-clock times in the
// brand's zone (named in the header), never UTC "Z" strings. One row
// builder serves both formats.

// exportCol is a column: its header in each language.
type exportCol struct{ zh, en string }

// cellKind says how a cell is written in each format.
type cellKind int

const (
	cellText  cellKind = iota // member-supplied or code text
	cellInt                   // a count
	cellMoney                 // fen, shown as yuan with two decimals
	cellTime                  // a moment, shown in the brand zone
	cellBool                  // 是/否
)

type exportCell struct {
	kind cellKind
	s    string
	n    int64
	t    time.Time
	b    bool
}

func textCell(s string) exportCell    { return exportCell{kind: cellText, s: s} }
func intCell(n int64) exportCell      { return exportCell{kind: cellInt, n: n} }
func moneyCell(fen int64) exportCell  { return exportCell{kind: cellMoney, n: fen} }
func timeCell(t time.Time) exportCell { return exportCell{kind: cellTime, t: t} }
func boolCell(b bool) exportCell      { return exportCell{kind: cellBool, b: b} }

// exportSheet is one format's writer.
type exportSheet interface {
	header(cols []string) error
	row(cells []exportCell) error
	// finish ends the file; err is the scan's error (nil when complete).
	finish(err error) error
}

// exportFormat is how an export renders words and times.
type exportFormat struct {
	en   bool
	zone *time.Location
}

func (f exportFormat) headers(cols []exportCol) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.zh
		if f.en {
			out[i] = c.en
		}
		out[i] = strings.ReplaceAll(out[i], "{zone}", f.zone.String())
	}
	return out
}

func (f exportFormat) yesNo(b bool) string {
	switch {
	case f.en && b:
		return "yes"
	case f.en:
		return "no"
	case b:
		return "是"
	default:
		return "否"
	}
}

// wall is t's wall-clock time in the brand zone ("" for the zero time).
func (f exportFormat) wall(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(f.zone).Format("2006-01-02 15:04:05")
}

// csvSheet streams CSV rows as they come.
type csvSheet struct {
	f exportFormat
	w io.Writer
	c *csv.Writer
}

func (s *csvSheet) header(cols []string) error { return s.c.Write(cols) }

func (s *csvSheet) row(cells []exportCell) error {
	rec := make([]string, len(cells))
	for i, c := range cells {
		switch c.kind {
		case cellText:
			rec[i] = csvSafe(c.s)
		case cellInt:
			rec[i] = strconv.FormatInt(c.n, 10)
		case cellMoney:
			rec[i] = yuan(c.n)
		case cellTime:
			rec[i] = s.f.wall(c.t)
		case cellBool:
			rec[i] = s.f.yesNo(c.b)
		}
	}
	return s.c.Write(rec)
}

func (s *csvSheet) finish(err error) error {
	s.c.Flush()
	if err == nil {
		err = s.c.Error()
	}
	if err != nil {
		// Headers are gone; a truncated file must not look complete.
		_, _ = fmt.Fprintf(s.w, "# export incomplete: %v\n", err)
	}
	return err
}

// xlsxSheet builds the workbook with excelize's stream writer and sends it
// at the end, so a failed scan still answers with a proper error.
type xlsxSheet struct {
	f       exportFormat
	w       http.ResponseWriter
	r       *http.Request
	s       *Server
	name    string
	book    *excelize.File
	sw      *excelize.StreamWriter
	rowN    int
	money   int
	when    int
	headSty int
	widths  []float64
}

func newXLSXSheet(s *Server, w http.ResponseWriter, r *http.Request, f exportFormat, name, sheet string) (*xlsxSheet, error) {
	book := excelize.NewFile()
	if err := book.SetSheetName("Sheet1", sheet); err != nil {
		return nil, err
	}
	x := &xlsxSheet{f: f, w: w, r: r, s: s, name: name, book: book}
	var err error
	moneyFmt, timeFmt := "0.00", "yyyy-mm-dd hh:mm:ss"
	if x.money, err = book.NewStyle(&excelize.Style{CustomNumFmt: &moneyFmt}); err != nil {
		return nil, err
	}
	if x.when, err = book.NewStyle(&excelize.Style{CustomNumFmt: &timeFmt}); err != nil {
		return nil, err
	}
	if x.headSty, err = book.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true},
		Fill: excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"E8F8EF"}}}); err != nil {
		return nil, err
	}
	if x.sw, err = book.NewStreamWriter(sheet); err != nil {
		return nil, err
	}
	return x, nil
}

// colWidth is a rough display width (CJK characters count double).
func colWidth(s string) float64 {
	w := 0.0
	for _, r := range s {
		if r > 0x2e80 {
			w += 2
		} else {
			w++
		}
	}
	return w
}

func (x *xlsxSheet) header(cols []string) error {
	x.widths = make([]float64, len(cols))
	for i, c := range cols {
		x.widths[i] = max(10, colWidth(c)+2)
	}
	// Column widths must come before the first row in a stream.
	for i, wd := range x.widths {
		if err := x.sw.SetColWidth(i+1, i+1, min(wd, 60)); err != nil {
			return err
		}
	}
	vals := make([]any, len(cols))
	for i, c := range cols {
		vals[i] = excelize.Cell{StyleID: x.headSty, Value: c}
	}
	if err := x.sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return err
	}
	return x.next(vals)
}

// xlsxMaxRows is a worksheet's row limit (Excel's 1,048,576; a variable so
// tests can shrink it).
var xlsxMaxRows = excelize.TotalRows

func (x *xlsxSheet) next(vals []any) error {
	x.rowN++
	if x.rowN > xlsxMaxRows {
		// A request that can't succeed as asked: a 400 that says what will.
		return &paramError{Param: "export", Msg: fmt.Sprintf("has more than %d rows, the most a worksheet holds: narrow it with a filter or use the CSV export", xlsxMaxRows-1)}
	}
	cell, err := excelize.CoordinatesToCellName(1, x.rowN)
	if err != nil {
		return err
	}
	return x.sw.SetRow(cell, vals)
}

func (x *xlsxSheet) row(cells []exportCell) error {
	vals := make([]any, len(cells))
	for i, c := range cells {
		switch c.kind {
		case cellText:
			// Stored as a shared string: a leading = is text, not a formula.
			vals[i] = c.s
		case cellInt:
			vals[i] = c.n
		case cellMoney:
			vals[i] = excelize.Cell{StyleID: x.money, Value: float64(c.n) / 100}
		case cellTime:
			if c.t.IsZero() {
				vals[i] = nil
				continue
			}
			// Excel times have no zone: write the brand zone's wall clock.
			lt := c.t.In(x.f.zone)
			wall := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), lt.Second(), 0, time.UTC)
			vals[i] = excelize.Cell{StyleID: x.when, Value: wall}
		case cellBool:
			vals[i] = x.f.yesNo(c.b)
		}
	}
	return x.next(vals)
}

func (x *xlsxSheet) finish(scanErr error) error {
	defer x.book.Close()
	if scanErr != nil {
		x.s.fail(x.w, x.r, scanErr)
		return scanErr
	}
	if err := x.sw.Flush(); err != nil {
		x.s.fail(x.w, x.r, err)
		return err
	}
	var buf bytes.Buffer
	if _, err := x.book.WriteTo(&buf); err != nil {
		x.s.fail(x.w, x.r, err)
		return err
	}
	exportHeaders(x.w, x.name, "xlsx", x.s.o.Now().In(x.f.zone))
	x.w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, err := buf.WriteTo(x.w)
	return err
}

// brandZone is the scenario's brand zone (Asia/Shanghai by default).
func (s *Server) brandZone() *time.Location {
	if s.o.Scenario != nil {
		if sc := s.o.Scenario(); sc != nil && sc.Brand.Zone != nil {
			return sc.Brand.Zone
		}
	}
	if loc, err := time.LoadLocation(scenarios.DefaultZone); err == nil {
		return loc
	}
	return time.UTC
}

// exportStageNames: the scenario's stage names in 中文 (what the brand
// calls them), English names for ?lang=en.
var exportStageNamesEN = map[bot.Stage]string{bot.StageAware: "Aware", bot.StageInterest: "Interest",
	bot.StagePurchase: "Purchase", bot.StageLoyal: "Loyal"}

func (s *Server) exportStage(f exportFormat, st bot.Stage) string {
	if st == bot.StageNone {
		if f.en {
			return "not in funnel"
		}
		return "未入漏斗"
	}
	if f.en {
		if n := exportStageNamesEN[st]; n != "" {
			return n
		}
		return string(st)
	}
	return s.stageName(st)
}

func exportHeaders(w http.ResponseWriter, name, ext string, now time.Time) {
	ct := "text/csv; charset=utf-8"
	if ext == "xlsx" {
		ct = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="wecombot-%s-%s.%s"`, name, now.Format("20060102-150405"), ext))
	w.Header().Set("X-Content-Type-Options", "nosniff")
}

// openExport parses ?lang and starts the sheet in the asked format; ok is
// false when it already answered with an error.
func (s *Server) openExport(w http.ResponseWriter, r *http.Request, q *query, ext, name string, sheet [2]string) (exportSheet, exportFormat, bool) {
	f := exportFormat{en: q.oneOf("lang", "zh", "en") == "en", zone: s.brandZone()}
	if q.err != nil {
		s.fail(w, r, q.err)
		return nil, f, false
	}
	if ext == "xlsx" {
		title := sheet[0]
		if f.en {
			title = sheet[1]
		}
		x, err := newXLSXSheet(s, w, r, f, name, title)
		if err != nil {
			s.fail(w, r, err)
			return nil, f, false
		}
		return x, f, true
	}
	exportHeaders(w, name, "csv", s.o.Now().In(f.zone))
	// A UTF-8 BOM makes Excel (common with operators) read Chinese names right.
	_, _ = w.Write([]byte("\uFEFF"))
	return &csvSheet{f: f, w: w, c: csv.NewWriter(w)}, f, true
}

var memberExportCols = []exportCol{
	{"客户ID", "External user ID"}, {"姓名", "Name"}, {"阶段", "Stage"}, {"渠道", "Channel"}, {"渠道活码 state", "Contact-me state"},
	{"跟进员工", "Staff"}, {"会员等级", "Level"}, {"积分", "Points"}, {"打卡天数", "Check-in days"}, {"订单数", "Orders"},
	{"消费金额（元）", "Spend (yuan)"}, {"企业客户标签", "Corp tags"}, {"已流失", "Lost"},
	{"添加时间（{zone}）", "Added ({zone})"}, {"更新时间（{zone}）", "Updated ({zone})"},
}

// exportMembers answers GET /api/v1/export/members.{csv,xlsx} (the members
// list's filters), read in bounded chunks.
func (s *Server) exportMembers(ext string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := newQuery(r, "stage", "tag", "channel", "staff", "level", "q", "lost", "lang")
		flt := parseMemberFilter(q)
		sheet, f, ok := s.openExport(w, r, q, ext, "members", [2]string{"客户", "Customers"})
		if !ok {
			return
		}
		var form *scenarios.ProfileForm
		if s.o.Scenario != nil && s.o.Scenario() != nil {
			form = s.o.Scenario().ProfileForm
		}
		werr := sheet.header(f.headers(append(slices.Clip(memberExportCols), profileExportCols(form)...)))
		err := s.eachMember(r.Context(), func(m *bot.Member) bool {
			if werr != nil {
				return false
			}
			if !flt.match(m) {
				return true
			}
			werr = sheet.row(append([]exportCell{textCell(m.ExternalUserID), textCell(m.Name), textCell(s.exportStage(f, m.Stage)),
				textCell(m.Channel), textCell(m.State), textCell(m.PrimaryStaff()), textCell(m.Level), intCell(m.Points),
				intCell(int64(m.CheckIns)), intCell(int64(m.Orders)), moneyCell(m.SpendFen), textCell(strings.Join(m.Tags, ";")),
				boolCell(m.Lost), timeCell(m.CreatedAt), timeCell(m.UpdatedAt)}, profileExportCells(form, m)...))
			return werr == nil
		})
		if err = sheet.finish(firstErr(err, werr)); err != nil {
			s.log.Error().Err(err).Str("format", ext).Msg("members export stopped")
		}
	}
}

// profileExportCols are the members export's profile form columns: the
// birthday, when she filled the form in, and one column per question of the
// form in force (its label; the birthday question has its own column).
func profileExportCols(form *scenarios.ProfileForm) []exportCol {
	cols := []exportCol{{"生日", "Birthday"}, {"资料填写时间（{zone}）", "Profile completed ({zone})"}}
	if form == nil {
		return cols
	}
	for _, fd := range form.Fields {
		if fd.Type != scenarios.FieldBirthday {
			cols = append(cols, exportCol{fd.Label, fd.Label})
		}
	}
	return cols
}

func profileExportCells(form *scenarios.ProfileForm, m *bot.Member) []exportCell {
	var completed time.Time
	if m.Profile != nil {
		completed = m.Profile.CompletedAt
	}
	cells := []exportCell{textCell(m.Birthday), timeCell(completed)}
	if form == nil {
		return cells
	}
	for _, fd := range form.Fields {
		if fd.Type == scenarios.FieldBirthday {
			continue
		}
		text := ""
		if a := m.Profile.Answer(fd.Key); a != nil {
			text = form.AnswerText(*a)
		}
		cells = append(cells, textCell(text))
	}
	return cells
}

var orderExportCols = []exportCol{
	{"订单号", "Order ID"}, {"客户ID", "External user ID"}, {"姓名", "Name"}, {"金额（元）", "Amount (yuan)"},
	{"已退款（元）", "Refunded (yuan)"}, {"计入漏斗", "Counted"}, {"已全额退款", "Voided"}, {"支付时间（{zone}）", "Paid ({zone})"},
}

// exportOrders answers GET /api/v1/export/orders.{csv,xlsx}.
func (s *Server) exportOrders(ext string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := newQuery(r, "member", "lang")
		member := q.str("member", 256)
		sheet, f, ok := s.openExport(w, r, q, ext, "orders", [2]string{"订单", "Orders"})
		if !ok {
			return
		}
		werr := sheet.header(f.headers(orderExportCols))
		err := s.o.Store.View(r.Context(), func(tx bot.Tx) error {
			names := map[string]string{}
			return engine.ScanOrders(tx, func(o engine.Order) bool {
				if werr != nil {
					return false
				}
				if member != "" && o.Member != member {
					return true
				}
				name, seen := names[o.Member]
				if !seen {
					if m, err := tx.Member(o.Member); err == nil {
						name = m.Name
					}
					if len(names) < 100000 {
						names[o.Member] = name
					}
				}
				paid := timeCell(time.Time{})
				if t, err := time.Parse(time.RFC3339Nano, o.PaidAt); err == nil {
					paid = timeCell(t)
				} else if o.PaidAt != "" {
					paid = textCell(o.PaidAt)
				}
				werr = sheet.row([]exportCell{textCell(o.ID), textCell(o.Member), textCell(name), moneyCell(o.AmountFen),
					moneyCell(o.RefundedFen), boolCell(o.Counted), boolCell(o.Voided), paid})
				return werr == nil
			})
		})
		if err = sheet.finish(firstErr(err, werr)); err != nil {
			s.log.Error().Err(err).Str("format", ext).Msg("orders export stopped")
		}
	}
}
