// Starts the pinned Azurite with its garbage collectors of unreferenced extents (queue: every
// 60 s; blob: every 10 min) put off for the life of the process. Each run of Azurite's queue
// collector blocks its event loop for seconds once many messages have passed through (its
// sweep grows faster than linearly with them: 3-11 s were measured after the cmd/platform
// tests), and every request waits meanwhile — a stall real Azure Storage never has, which
// made the timing tests (visibility renewal, leases) fail at random. Without the collectors,
// the extents of deleted messages and blobs stay in memory until Azurite stops: a test run's
// worth is tens of megabytes. Everything else is Azurite as installed; arguments as its own.
"use strict";
const never = 2147483647; // the longest delay setTimeout takes (~24.8 days)
require("azurite/dist/src/queue/utils/constants").DEFAULT_GC_INTERVAL_MS = never;
require("azurite/dist/src/blob/utils/constants").DEFAULT_GC_INTERVAL_MS = never;
require("azurite/dist/src/azurite.js");
