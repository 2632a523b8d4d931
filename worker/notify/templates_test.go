package notify

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/platform/platform/mappings"
)

// A template is parsed once and then filled by many emails at once; an edited template is a
// new source, filled as edited; one with an error is refused every time, never cached.
func TestTemplatesAreParsedOnceAndEditsTakeEffect(t *testing.T) {
	tmpl := &mappings.Template{Subject: "Hello {{.Data.name}}", Text: "Dear {{.Data.name}}", HTML: "<p>{{.Data.name}}</p>"}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("<b>%d</b>", i)
			subject, text, html, err := render(tmpl, renderData{Data: map[string]any{"name": name}})
			if err != nil || subject != "Hello "+name || text != "Dear "+name || html != "<p>&lt;b&gt;"+fmt.Sprint(i)+"&lt;/b&gt;</p>" {
				t.Errorf("render %d: %q %q %q %v", i, subject, text, html, err)
			}
		})
	}
	wg.Wait()
	first, _ := parsed.text("subject", tmpl.Subject)
	again, _ := parsed.text("subject", tmpl.Subject)
	if first == nil || first != again {
		t.Fatal("the subject's template was parsed again")
	}
	edited := &mappings.Template{Subject: "Hi {{.Data.name}}", Text: "Dear {{.Data.name}}", HTML: "<i>{{.Data.name}}</i>"}
	subject, _, html, err := render(edited, renderData{Data: map[string]any{"name": "Ada"}})
	if err != nil || subject != "Hi Ada" || html != "<i>Ada</i>" {
		t.Fatalf("the edited template: %q %q %v", subject, html, err)
	}
	broken := &mappings.Template{Subject: "{{.Data.name", Text: "x"}
	for range 2 {
		if _, _, _, err := render(broken, renderData{}); err == nil {
			t.Fatal("a template that does not parse was filled")
		}
	}
}

// The parsed templates are bounded in bytes of source: templates edited many times, or large,
// do not grow the cache past maxParsedBytes.
func TestParsedTemplatesAreBoundedInBytes(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	for i := range 40 {
		if _, err := parsed.html(fmt.Sprintf("%d%s", i, big)); err != nil {
			t.Fatal(err)
		}
	}
	parsed.mu.Lock()
	defer parsed.mu.Unlock()
	if parsed.bytes > maxParsedBytes || len(parsed.htmls) > maxParsedBytes>>20 {
		t.Fatalf("%d bytes in %d templates held, want at most %d bytes", parsed.bytes, len(parsed.htmls), maxParsedBytes)
	}
}
