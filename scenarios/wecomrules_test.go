package scenarios

import "testing"

// notify absent means notify (WeCom's default); notify: false is kept.
func TestGroupWelcomeNotifyDefault(t *testing.T) {
	sc, err := LoadBytes("s.yaml", []byte(`
brand: {name: 山茶集}
group_welcome:
  default:
    text: hi
  templates:
    - name: quiet
      notify: false
      text: hello
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.GroupWelcomes) != 2 || !sc.GroupWelcomes[0].Notify || sc.GroupWelcomes[1].Notify {
		t.Fatalf("notify = %v, %v; want true (absent), false", sc.GroupWelcomes[0].Notify, sc.GroupWelcomes[1].Notify)
	}
}
