package tables

// WithPageSize is o asking the table service for pages of n matches, so that a test reaches
// the page bound without a thousand rows.
func WithPageSize(o StateScan, n int) StateScan {
	o.pageSize = n
	return o
}
