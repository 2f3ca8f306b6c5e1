package server

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

// readExport fetches an export and returns its rows, read back as the
// operator's spreadsheet would: CSV after the BOM, xlsx through excelize.
func readExport(t *testing.T, f *fixture, path string) (response, [][]string) {
	t.Helper()
	r := f.get(path)
	if r.code != 200 || !strings.Contains(r.hdr.Get("Content-Disposition"), "attachment") {
		t.Fatalf("%s: %d %v %s", path, r.code, r.hdr, r.body)
	}
	if strings.Contains(path, ".xlsx") {
		if r.hdr.Get("Content-Type") != "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" {
			t.Fatalf("%s: content type %q", path, r.hdr.Get("Content-Type"))
		}
		book, err := excelize.OpenReader(bytes.NewReader([]byte(r.body)))
		if err != nil {
			t.Fatalf("%s: not a workbook: %v", path, err)
		}
		defer book.Close()
		sheets := book.GetSheetList()
		rows, err := book.GetRows(sheets[0])
		if err != nil {
			t.Fatal(err)
		}
		return r, rows
	}
	if r.hdr.Get("Content-Type") != "text/csv; charset=utf-8" || !strings.HasPrefix(r.body, "\uFEFF") {
		t.Fatalf("%s: %v (BOM %v)", path, r.hdr, strings.HasPrefix(r.body, "\uFEFF"))
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(r.body, "\uFEFF"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return r, rows
}

func rowOf(rows [][]string, id string) []string {
	for _, row := range rows {
		if len(row) > 0 && row[0] == id {
			return row
		}
	}
	return nil
}

// TestExports: members and orders as CSV and .xlsx, in 中文 by default
// (headers, stage names, 是/否) and English on ?lang=en, times as the
// brand zone's wall clock (Asia/Shanghai, named in the header; never a
// UTC "Z"), the members list's filters, and spreadsheet formulas defused.
// TestExports is not parallel: it lowers the package's xlsxMaxRows, which
// every other test's export handler reads.
func TestExports(t *testing.T) {
	f := newFixture(t, nil)
	f.seedCommunity()
	f.add("wm_formula", "=HYPERLINK(\"http://evil\")", "xhs", "s1", f.now)
	// wm_bob was added 2026-11-11 02:00 UTC: 10:00 in Shanghai.
	for _, ext := range []string{"csv", "xlsx"} {
		t.Run(ext, func(t *testing.T) {
			r, rows := readExport(t, f, "/api/v1/export/members."+ext)
			if !strings.Contains(r.hdr.Get("Content-Disposition"), "."+ext+`"`) {
				t.Errorf("file name: %s", r.hdr.Get("Content-Disposition"))
			}
			if len(rows) != 7 {
				t.Fatalf("rows %v", rows)
			}
			head := strings.Join(rows[0], "|")
			for _, want := range []string{"客户ID", "姓名", "阶段", "渠道", "企业客户标签", "会员等级", "消费金额（元）", "添加时间（Asia/Shanghai）"} {
				if !strings.Contains(head, want) {
					t.Errorf("headers %q lack %q", head, want)
				}
			}
			bob := rowOf(rows, "wm_bob")
			if bob == nil || bob[2] != "忠诚" || bob[10] != "143.90" || bob[12] != "否" || bob[13] != "2026-11-11 10:00:00" {
				t.Errorf("bob row %q", bob)
			}
			if carol := rowOf(rows, "wm_carol"); carol == nil || carol[12] != "是" {
				t.Errorf("carol (deleted by her only staff) %q", carol)
			}
			for _, row := range rows {
				for _, c := range row {
					if strings.HasSuffix(c, "Z") && strings.Contains(c, "T") {
						t.Errorf("a UTC timestamp in %q", row)
					}
				}
			}
			formula := rowOf(rows, "wm_formula")
			switch ext {
			case "csv":
				if !strings.HasPrefix(formula[1], "'=") {
					t.Errorf("formula not defused in CSV: %q", formula[1])
				}
			case "xlsx":
				// A string cell is text in Excel whatever it starts with; and no cell is a formula.
				book, _ := excelize.OpenReader(bytes.NewReader([]byte(r.body)))
				defer book.Close()
				sheet := book.GetSheetList()[0]
				if sheet != "客户" {
					t.Errorf("sheet %q", sheet)
				}
				for i := range rows {
					for j := range rows[i] {
						cell, _ := excelize.CoordinatesToCellName(j+1, i+1)
						if fx, _ := book.GetCellFormula(sheet, cell); fx != "" {
							t.Errorf("%s is a formula: %s", cell, fx)
						}
					}
				}
				// Money and times are numbers (sortable, summable), not text.
				for _, col := range []string{"K", "N"} {
					cell := col + "3"
					if typ, _ := book.GetCellType(sheet, cell); typ == excelize.CellTypeSharedString || typ == excelize.CellTypeInlineString {
						t.Errorf("%s is text (%v)", cell, typ)
					}
				}
				raw, _ := book.GetCellValue(sheet, "N3", excelize.Options{RawCellValue: true})
				if _, err := time.Parse("2006-01-02", raw); err == nil || raw == "" {
					t.Errorf("N3 raw value %q: want an Excel serial date", raw)
				}
			}
			if _, rows := readExport(t, f, "/api/v1/export/members."+ext+"?stage=aware&channel=douyin"); len(rows) != 2 || rows[1][0] != "wm_dave" && rows[1][0] != "wm_carol" {
				t.Errorf("filtered export: %q", rows)
			}
			if _, rows := readExport(t, f, "/api/v1/export/members."+ext+"?lang=en"); rows[0][0] != "External user ID" || rowOf(rows, "wm_bob")[2] != "Loyal" || rowOf(rows, "wm_bob")[12] != "no" || !strings.Contains(strings.Join(rows[0], "|"), "Added (Asia/Shanghai)") {
				t.Errorf("english export: %q / %q", rows[0], rowOf(rows, "wm_bob"))
			}

			_, rows = readExport(t, f, "/api/v1/export/orders."+ext)
			if len(rows) != 7 || rows[0][0] != "订单号" || rows[0][7] != "支付时间（Asia/Shanghai）" {
				t.Fatalf("orders: %q", rows)
			}
			// SO1: 29.90 on 2026-11-12 04:00 UTC = 12:00 in Shanghai.
			if so1 := rowOf(rows, "SO1"); so1 == nil || so1[1] != "wm_bob" || so1[2] != "Bob" || so1[3] != "29.90" || so1[5] != "是" || so1[7] != "2026-11-12 12:00:00" {
				t.Errorf("order row %q", so1)
			}
			if _, rows := readExport(t, f, "/api/v1/export/orders."+ext+"?member=wm_dave"); len(rows) != 2 {
				t.Errorf("orders by member: %q", rows)
			}
		})
	}
	// More rows than a worksheet holds: a 400 that says so, not a broken file.
	defer func(n int) { xlsxMaxRows = n }(xlsxMaxRows)
	xlsxMaxRows = 4
	if r := f.get("/api/v1/export/members.xlsx"); r.code != 400 || !strings.Contains(r.body, "CSV export") || r.hdr.Get("Content-Disposition") != "" {
		t.Errorf("too many rows for a worksheet: %d %v %.300s", r.code, r.hdr, r.body)
	}
	if r := f.get("/api/v1/export/members.xlsx?channel=douyin"); r.code != 200 {
		t.Errorf("a filtered export under the limit: %d %.300s", r.code, r.body)
	}
	for _, path := range []string{"/api/v1/export/members.xlsx?lang=fr", "/api/v1/export/orders.csv?lang=xx", "/api/v1/export/members.xlsx?stage=gold"} {
		if r := f.get(path); r.code != 400 || !strings.Contains(r.body, "lang") && !strings.Contains(r.body, "stage") {
			t.Errorf("%s: %d %s", path, r.code, r.body)
		}
	}
}
