package money

import (
	"errors"
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		micros  int64
		cur     Currency
		wantErr bool
	}{
		{"500.00 USD", 500_000_000, "USD", false},
		{"500 USD", 500_000_000, "USD", false},
		{"0.01 USD", 10_000, "USD", false},
		{"0 USD", 0, "USD", false},
		{"100000 JPY", 100_000_000_000, "JPY", false},
		{"12.345 KWD", 12_345_000, "KWD", false},
		{"1.005 USD", 0, "", true},
		{"100.5 JPY", 0, "", true},
		{"100. JPY", 0, "", true},
		{"500 dollars", 0, "", true},
		{"500.00 usd", 0, "", true},
		{"500.00 XYZ", 0, "", true},
		{"-5 USD", 0, "", true},
		{"+5 USD", 0, "", true},
		{"1e3 USD", 0, "", true},
		{"1,000 USD", 0, "", true},
		{"0500 USD", 0, "", true},
		{".5 USD", 0, "", true},
		{"500.00  USD", 0, "", true},
		{"500.00", 0, "", true},
		{"99999999999999 USD", 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got.Micros != tt.micros || got.Currency != tt.cur {
				t.Fatalf("Parse(%q) = %+v, want %d %s", tt.in, got, tt.micros, tt.cur)
			}
		})
	}
}

func TestParsePrice(t *testing.T) {
	got, err := ParsePrice("0.0079 USD")
	if err != nil || got.Micros != 7900 {
		t.Fatalf("ParsePrice = %+v, %v", got, err)
	}
	if _, err := ParsePrice("0.0000001 USD"); err == nil {
		t.Fatal("seven decimals accepted")
	}
}

func TestMinorRoundTrip(t *testing.T) {
	tests := []struct {
		minor int64
		cur   Currency
		str   string
	}{
		{1099, "USD", "10.99 USD"},
		{100, "JPY", "100 JPY"},
		{12340, "KWD", "12.340 KWD"},
		{5, "USD", "0.05 USD"},
		{0, "EUR", "0.00 EUR"},
	}
	for _, tt := range tests {
		a, err := FromMinor(tt.minor, tt.cur)
		if err != nil {
			t.Fatal(err)
		}
		if a.String() != tt.str {
			t.Errorf("%d %s: String = %q, want %q", tt.minor, tt.cur, a.String(), tt.str)
		}
		m, exact := a.Minor()
		if m != tt.minor || !exact {
			t.Errorf("%d %s: Minor = %d, %v", tt.minor, tt.cur, m, exact)
		}
	}
}

func TestSubMinor(t *testing.T) {
	a := Amount{Micros: 7900, Currency: "USD"} // 0.0079 USD
	if m, exact := a.Minor(); m != 1 || exact {
		t.Fatalf("Minor = %d, %v; want 1 rounded up", m, exact)
	}
	if got := a.MinorDecimal(); got != "0.79" {
		t.Fatalf("MinorDecimal = %q", got)
	}
	if got := a.String(); got != "0.0079 USD" {
		t.Fatalf("String = %q", got)
	}
	neg := Amount{Micros: -7900, Currency: "USD"}
	if got := neg.MinorDecimal(); got != "-0.79" {
		t.Fatalf("MinorDecimal = %q", got)
	}
}

func TestArithmeticOverflow(t *testing.T) {
	big := Amount{Micros: 1 << 62, Currency: "USD"}
	if _, err := big.Add(big); !errors.Is(err, ErrOverflow) {
		t.Fatalf("Add: %v", err)
	}
	if _, err := big.Times(4); !errors.Is(err, ErrOverflow) {
		t.Fatalf("Times: %v", err)
	}
	if _, err := big.Add(Amount{Micros: 1, Currency: "EUR"}); err == nil {
		t.Fatal("added EUR to USD")
	}
	if _, err := FromMinor(1<<62, "JPY"); !errors.Is(err, ErrOverflow) {
		t.Fatalf("FromMinor: %v", err)
	}
}

func TestRate(t *testing.T) {
	r, err := ParseRate("JPY", "0.0068 USD")
	if err != nil {
		t.Fatal(err)
	}
	yen, _ := FromMinor(1000, "JPY")
	got, err := r.Convert(yen)
	if err != nil {
		t.Fatal(err)
	}
	if got != (Amount{Micros: 6_800_000, Currency: "USD"}) {
		t.Fatalf("Convert = %+v", got)
	}
	// 1 yen at 0.0068 is 0.0068 USD exactly; 1 micro-yen rounds up to 1 micro.
	got, _ = r.Convert(Amount{Micros: 1, Currency: "JPY"})
	if got.Micros != 1 {
		t.Fatalf("round up: %+v", got)
	}
	if _, err := r.Convert(Amount{Micros: 1, Currency: "EUR"}); err == nil {
		t.Fatal("converted the wrong currency")
	}
	for _, bad := range []string{"0 USD", "1.2 JPY", "1,2 USD"} {
		if _, err := ParseRate("JPY", bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestParseCurrency(t *testing.T) {
	if c, err := ParseCurrency("usd"); err != nil || c != "USD" {
		t.Fatalf("ParseCurrency(usd) = %q, %v", c, err)
	}
	if _, err := ParseCurrency("usdd"); err == nil {
		t.Fatal("accepted usdd")
	}
}

func TestMinorDecimalRoundTrip(t *testing.T) {
	for _, a := range []Amount{
		{Micros: 7900, Currency: "USD"},
		{Micros: -7900, Currency: "USD"},
		{Micros: 10_990_000, Currency: "USD"},
		{Micros: 100_000_000, Currency: "JPY"},
		{Micros: 12_345_000, Currency: "KWD"},
		{Micros: 1, Currency: "KWD"},
		{Micros: 0, Currency: "EUR"},
	} {
		s := a.MinorDecimal()
		got, err := ParseMinorDecimal(s, a.Currency)
		if err != nil || got != a {
			t.Errorf("%+v -> %q -> %+v, %v", a, s, got, err)
		}
	}
	if _, err := ParseMinorDecimal("1.0000001", "USD"); err == nil {
		t.Error("accepted sub-micro precision")
	}
}

func TestDecimal(t *testing.T) {
	tests := []struct {
		a    Amount
		want string
	}{
		{Amount{Micros: 5_000_000, Currency: "USD"}, "5.00"},
		{Amount{Micros: 8500, Currency: "USD"}, "0.0085"}, // a Twilio segment
		{Amount{Micros: 1, Currency: "USD"}, "0.000001"},
		{Amount{Micros: -500_000, Currency: "USD"}, "-0.50"},
		{Amount{Micros: 100_000 * MicrosPerUnit, Currency: "JPY"}, "100000"},
		{Amount{Micros: 500_000, Currency: "JPY"}, "0.5"}, // a converted yen price keeps its fraction
		{Amount{Micros: 12_340_000, Currency: "KWD"}, "12.340"},
		{Amount{Currency: "EUR"}, "0.00"},
		{Amount{Micros: math.MaxInt64, Currency: "USD"}, "9223372036854.775807"},
		{Amount{Micros: math.MinInt64, Currency: "USD"}, "-9223372036854.775808"},
	}
	for _, tt := range tests {
		if got := tt.a.Decimal(); got != tt.want {
			t.Errorf("%+v.Decimal() = %q, want %q", tt.a, got, tt.want)
		}
		if got := tt.a.String(); got != tt.want+" "+string(tt.a.Currency) {
			t.Errorf("%+v.String() = %q, want Decimal and the code", tt.a, got)
		}
		got, err := ParseDecimal(tt.want, tt.a.Currency)
		if err != nil || got != tt.a {
			t.Errorf("ParseDecimal(%q, %s) = %+v, %v; want %+v", tt.want, tt.a.Currency, got, err, tt.a)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	for _, tt := range []struct {
		in   string
		cur  Currency
		want int64
	}{
		{"5", "USD", 5_000_000},
		{"5.000000", "USD", 5_000_000},
		{"0.0085", "USD", 8500},
		{"-0", "USD", 0},
		{"9223372036854.775807", "USD", 1<<63 - 1},
	} {
		got, err := ParseDecimal(tt.in, tt.cur)
		if err != nil || got != (Amount{Micros: tt.want, Currency: tt.cur}) {
			t.Errorf("ParseDecimal(%q, %s) = %+v, %v; want %d micros", tt.in, tt.cur, got, err, tt.want)
		}
	}
	for _, bad := range []struct {
		in  string
		cur Currency
	}{
		{"0.0000001", "USD"}, // finer than a micro
		{"+5", "USD"}, {"5e3", "USD"}, {"1,000", "USD"}, {"05", "USD"}, {"", "USD"}, {"-", "USD"},
		{".5", "USD"}, {"5.", "USD"}, {" 5", "USD"}, {"--5", "USD"}, {"5.00 USD", "USD"},
		{"9223372036854.775808", "USD"}, // one micro past the largest amount
		{"-9223372036854.775809", "USD"},
		{"5", "XYZ"}, {"5", ""},
	} {
		if got, err := ParseDecimal(bad.in, bad.cur); err == nil {
			t.Errorf("ParseDecimal(%q, %q) = %+v, want an error", bad.in, bad.cur, got)
		}
	}
}
