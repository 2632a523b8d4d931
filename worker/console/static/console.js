// The Live page: the realtime change stream of a business unit (see live.html).
