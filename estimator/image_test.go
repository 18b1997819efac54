package estimator

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
)

// TestVisionRuleTokens checks OpenAI's published tile rule on hand-computed
// sizes.
func TestVisionRuleTokens(t *testing.T) {
	cases := []struct {
		model  string
		w, h   int
		detail string
		want   int64
		exact  bool
	}{
		// 1024×1024 fits 2048; shortest 1024 → 768×768; 2×2 tiles: 85 + 4·170 = 765.
		{"gpt-4o", 1024, 1024, "high", 765, true},
		// 2048×4096 → fit 1024×2048 → shortest 768: 768×1536; 2×3 tiles: 85 + 6·170 = 1105.
		{"gpt-4o", 2048, 4096, "high", 1105, true},
		// auto is high: the same.
		{"gpt-4.1", 2048, 4096, "auto", 1105, true},
		{"gpt-4o", 2048, 4096, "", 1105, true},
		// low detail: 85 whatever the size.
		{"gpt-4o", 4096, 4096, "low", 85, true},
		// small images are not scaled up: 100×100 is one tile, 85 + 170.
		{"gpt-4-turbo", 100, 100, "high", 255, true},
		// 513×512: 2×1 tiles: 85 + 340.
		{"gpt-4o", 513, 512, "high", 425, true},
		// gpt-4o-mini: 2833 + 5667 per tile; 1024×1024 → 4 tiles = 25501.
		{"gpt-4o-mini", 1024, 1024, "high", 25501, true},
		{"gpt-4o-mini", 1024, 1024, "low", 2833, true},
		// Patch-based and other families: the classic rule, approximate.
		{"gpt-4.1-mini", 1024, 1024, "high", 765, false},
		{"o3", 1024, 1024, "high", 765, false},
		{"gpt-5", 1024, 1024, "high", 765, false},
	}
	for _, c := range cases {
		r := VisionRuleFor(c.model)
		if got := r.Tokens(c.w, c.h, c.detail); got != c.want || r.Exact != c.exact {
			t.Errorf("%s %dx%d %q: %d (exact %v), want %d (exact %v)", c.model, c.w, c.h, c.detail, got, r.Exact, c.want, c.exact)
		}
	}
}

func dataURL(t *testing.T, format string, w, h int) string {
	t.Helper()
	img := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black, color.White})
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, img)
	case "jpeg":
		err = jpeg.Encode(&b, img, nil)
	case "gif":
		err = gif.Encode(&b, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return "data:image/" + format + ";base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}

// webp builds a RIFF/WEBP header with one chunk.
func webp(chunk string, body []byte) string {
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(4+8+len(body)))
	b.WriteString("WEBP" + chunk)
	binary.Write(&b, binary.LittleEndian, uint32(len(body)))
	b.Write(body)
	return "data:image/webp;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}

func TestParseImageURLSizes(t *testing.T) {
	vp8x := make([]byte, 10)
	vp8x[4], vp8x[5], vp8x[7], vp8x[8] = 0xff, 0x07, 0xff, 0x0f      // 2048 × 4096 (stored minus one)
	vp8 := []byte{0, 0, 0, 0x9d, 0x01, 0x2a, 0x00, 0x04, 0x00, 0x04} // 1024 × 1024
	vp8l := make([]byte, 10)
	vp8l[0] = 0x2f
	binary.LittleEndian.PutUint32(vp8l[1:], uint32(1023)|uint32(511)<<14) // 1024 × 512
	cases := []struct {
		name, url string
		w, h      int
	}{
		{"png", dataURL(t, "png", 1024, 1024), 1024, 1024},
		{"jpeg", dataURL(t, "jpeg", 2048, 4096), 2048, 4096},
		{"gif", dataURL(t, "gif", 300, 200), 300, 200},
		{"webp VP8X", webp("VP8X", vp8x), 2048, 4096},
		{"webp VP8", webp("VP8 ", vp8), 1024, 1024},
		{"webp VP8L", webp("VP8L", vp8l), 1024, 512},
	}
	for _, c := range cases {
		im, err := parseImageURL(c.url, "high")
		if err != nil || im.Width != c.w || im.Height != c.h || im.Remote() {
			t.Errorf("%s: %dx%d remote=%v err=%v, want %dx%d", c.name, im.Width, im.Height, im.Remote(), err, c.w, c.h)
		}
	}
	bad := []struct{ url, detail, want string }{
		{"data:image/png;base64,AAAA", "", "cannot read the image's size: not a PNG, JPEG, GIF or WebP image, or a damaged one"},
		{"data:image/png;base64,!!!", "", "data: URL: invalid base64"},
		{"data:image/png,abc", "", "data: URL is not base64 (expected data:image/...;base64,...)"},
		{"https://example.com/a.png", "ultra", `detail "ultra": expected "low", "high" or "auto"`},
		{"", "", "empty; expected a data: URL or an http(s) URL"},
	}
	for _, c := range bad {
		if _, err := parseImageURL(c.url, c.detail); err == nil || err.Error() != c.want {
			t.Errorf("parseImageURL(%q) error %v, want %q", c.url, err, c.want)
		}
	}
	if im, err := parseImageURL("https://example.com/cat.png", ""); err != nil || !im.Remote() {
		t.Errorf("remote URL: %+v %v", im, err)
	}
}

// Image parts used to be dropped; now each is billed by the model's rule.
func TestChatCountsImages(t *testing.T) {
	png1024 := dataURL(t, "png", 1024, 1024)
	jpegTall := dataURL(t, "jpeg", 2048, 4096)
	gifSmall := dataURL(t, "gif", 64, 64)
	text := `[{"role":"user","content":[{"type":"text","text":"What is this?"}]}]`
	c := counterFor(t, "gpt-4o")
	base := c.WithVision("gpt-4o").Chat(mustParse(t, text), nil)
	cases := []struct {
		model, parts  string
		images        int64 // tokens the images add
		approx, count int
	}{
		{"gpt-4o", `{"type":"image_url","image_url":{"url":"` + png1024 + `","detail":"high"}}`, 765, 0, 1},
		{"gpt-4o", `{"type":"image_url","image_url":{"url":"` + jpegTall + `"}}`, 1105, 0, 1},
		{"gpt-4o", `{"type":"image_url","image_url":{"url":"` + png1024 + `","detail":"low"}}`, 85, 0, 1},
		{"gpt-4o", `{"type":"image_url","image_url":{"url":"` + gifSmall + `"}},{"type":"image_url","image_url":"https://example.com/x.png"}`, 255 + 85, 1, 2},
		{"gpt-4o-mini", `{"type":"image_url","image_url":{"url":"` + png1024 + `"}}`, 25501, 0, 1},
		{"gpt-5", `{"type":"image_url","image_url":{"url":"` + png1024 + `"}}`, 765, 1, 1},
	}
	for _, cs := range cases {
		in := `[{"role":"user","content":[{"type":"text","text":"What is this?"},` + cs.parts + `]}]`
		got := c.WithVision(cs.model).ChatCount(mustParse(t, in), nil)
		if got.Tokens != base+cs.images || got.ImageTokens != cs.images || got.ApproxImages != cs.approx || got.Images != cs.count {
			t.Errorf("%s %.60s: %+v, want tokens %d (images %d, approx %d)", cs.model, cs.parts, got, base+cs.images, cs.images, cs.approx)
		}
	}
	if _, _, err := ParseChat([]byte(`[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x","detail":"max"}}]}]`)); err == nil ||
		err.Error() != `line 1: [0].content[0].image_url.detail: expected "low", "high" or "auto", got "max"` {
		t.Errorf("bad detail: %v", err)
	}
	if _, _, err := ParseChat([]byte(`[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]`)); err == nil ||
		!strings.HasPrefix(err.Error(), "line 1: [0].content[0].image_url.url: cannot read the image's size") {
		t.Errorf("bad inline image: %v", err)
	}
}

func mustParse(t *testing.T, s string) []Message {
	t.Helper()
	m, _, err := ParseChat([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
