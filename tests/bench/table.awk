# table.awk: turns the results of scripts/bench.sh into the markdown table of docs/BENCHMARKS.md.
# Input lines: "KEY n=N p50=X p99=Y max=Z" (microseconds) and free-form "KEY values..." lines.
function num(s) { sub(/^[a-z0-9]+=/, "", s); return s + 0 }
function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
function verdict(ok) { return ok ? "**met**" : "**missed**" }
function q(arr, n, f,    i, j, t) { # f-quantile of arr[1..n] (sorts in place)
	for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--)
		arr[j + 1] = arr[j]; arr[j + 1] = t }
	j = int(n * f) + 1; if (j > n) j = n
	return n ? arr[j] : 0
}
function row(what, sd, ref, r, target, ok) {
	printf "| %s | %s | %s | %s | %s | %s |\n", what, sd, ref, r, target, ok
}
function us(k) { return sprintf("%.1f / %.1f µs", p50[k], p99[k]) }
/ n=[0-9]+ p50=/ { p50[$1] = num($3); p99[$1] = num($4); mx[$1] = num($5); cnt[$1] = num($2)
	next }
/^sys\.[a-z]+\.[a-z]+ / { sysc[$1] = $3 > 0 ? sprintf("%.2f", $2 / $3) : "?"; next }
/^http\.rate / { rate[$2] = $3; next }
/^store\.rate / { srate = $3; frate = $5; next }
/^store\.$/ { next }
/^store\.keyrot / { krv = $3; krfill = $5; kr1 = $7; kr2 = $9; krst = $11; krst2 = $13; next }
/^rot[0-9a-z]+\.stale/ { stale[$1] = $2; next }
/^scale\.[0-9]+\.(idle|mounted|after) / { split($1, k, "."); st[k[2], k[3]] = $2 " " $3 " " $4
	rss[k[2], k[3]] = $2; next }
/^scale\.[0-9]+\.ready / { split($1, k, "."); rdy[k[2]] = $2; rfail[k[2]] = $3
	rsec[k[2]] = $4; next }
/^scale\.[0-9]+\.(mount|whoami)_ms / { split($1, k, "."); ms50[k[2], k[3]] = $2
	ms99[k[2], k[3]] = $3; next }
/^prop\.[0-9]+\.round / { split($1, k, "."); rounds[k[2]]++; seen[k[2]] += $4; want[k[2]] += $6
	putms[k[2]] = putms[k[2]] " " $8; next }
/^prop\.[0-9]+\.cost / { split($1, k, "."); cost[k[2]] = $2 " " $3 " " $4 " " $5 " " $6; next }
/^prop\.[0-9]+\.before / { split($1, k, "."); nb[k[2]]++; pb[k[2], nb[k[2]]] = $2 / 1e6; next }
/^prop\.[0-9]+\.after / { split($1, k, "."); na[k[2]]++; pa[k[2], na[k[2]]] = $2 / 1e6
	if (!(k[2] in seenN)) { seenN[k[2]] = 1; scales[++ns] = k[2] } next }
END {
	print "p50 / p99 of each figure; ratio = secretd p50 ÷ reference p50 measured in the same run."
	print ""
	print "| benchmark | secretd | reference | ratio | target | |"
	print "|---|---|---|---|---|---|"
	# runs: unpinned idle (and its reads classified by where reader and server ran: same CPU,
	# split), pinned (reader and servers on CPU 0), apart (servers on CPU 0, reader on CPU 1),
	# busy (unpinned, one busy loop per CPU)
	nm = split("idle idle.same idle.split pinned apart busy busy.same busy.split", modes, " ")
	for (m = 1; m <= nm; m++) {
		mode = modes[m]; split(mode, mm, "."); run = mm[1]; cls = mm[2]
		suf = cls == "" ? "" : "." cls
		if (!(("read." run ".sd64" suf) in p50))
			continue
		what = run == "idle" ? "idle, unpinned" : run == "busy" ? "busy, unpinned" : \
		    run == "pinned" ? "idle, reader and daemon pinned to CPU 0" : \
		    "idle, daemon on CPU 0, reader on CPU 1"
		if (cls != "")
			what = what ", the reads where reader and daemon ran on " \
			    (cls == "same" ? "the same CPU" : "different CPUs")
		sc = ("sys." run ".sd") in sysc && cls == "" ? sprintf("; daemon system calls per open " \
		    "%s vs minfs %s", sysc["sys." run ".sd"], sysc["sys." run ".mkc"]) : ""
		scno = ("sys." run ".sdno") in sysc && cls == "" ? sprintf("; %s vs %s",
		    sysc["sys." run ".sdno"], sysc["sys." run ".mno"]) : ""
		for (z = 1; z <= 2; z++) {
			sz = z == 1 ? "64" : "4k"
			sd = "read." run ".sd" sz suf; kc = "read." run ".minkc" sz suf
			no = "read." run ".sdno" sz suf; mno = "read." run ".minno" sz suf
			tf = "read." run ".tmpfs" sz
			# a classified state one side never hit has no figure to compare
			if ((sd in p50) && (kc in p50))
				row("1 read " sz " B cached, per-open check, " what " (n=" cnt[sd] sc ")",
				    us(sd), "minfs keep_cache " us(kc) " (n=" cnt[kc] ")",
				    ratio(p50[sd], p50[kc]), "≤ 1.2", verdict(p50[sd] <= 1.2 * p50[kc]))
			if ((no in p50) && (mno in p50))
				row("1 read " sz " B, `--no-open`, " what " (n=" cnt[no] scno ")", us(no),
				    "minfs no-open " us(mno) " (n=" cnt[mno] ")",
				    ratio(p50[no], p50[mno]), "≤ 1.2", verdict(p50[no] <= 1.2 * p50[mno]))
			if (cls == "")
				row("1 read " sz " B, `--no-open`, " what, us(no), "tmpfs " us(tf),
				    ratio(p50[no], p50[tf]), "≤ 2", verdict(p50[no] <= 2 * p50[tf]))
		}
	}
	for (z = 1; z <= 2; z++) {
		sz = z == 1 ? "64" : "4k"
		f = "rot" sz ".first_read_after_put"; u = "rot" sz ".ref_uncached"
		if (f in p50)
			row("1 first read " sz " B after rotation (put " sprintf("%.1f", p50["rot" sz ".put"] / 1e3) \
		    " ms), idle", us(f), "minfs uncached " us(u), ratio(p50[f], p50[u]), "≤ 2",
		    verdict(p50[f] <= 2 * p50[u] && stale["rot" sz ".stale"] == 0))
	}
	f = "rott64.first_read_after_put"; u = "rott64.ref_uncached"
	if (f in p50)
		row("1 first read of a 64 B rendered file after its input rotates (put " \
		    sprintf("%.1f", p50["rott64.put"] / 1e3) " ms), idle", us(f),
		    "the plain secret's first read after the same put " us(u), ratio(p50[f], p50[u]),
		    "≤ 1.5", verdict(p50[f] <= 1.5 * p50[u] && stale["rott64.stale"] == 0))
	for (i = 1; i <= ns; i++) {
		n = scales[i]
		for (j = 1; j <= nb[n]; j++) { tb[j] = pb[n, j]; ta[j] = pa[n, j] }
		b50 = q(tb, nb[n], 0.5); b99 = q(tb, nb[n], 0.99); bmax = tb[nb[n]]
		a50 = q(ta, na[n], 0.5); a99 = q(ta, na[n], 0.99); amax = ta[na[n]]
		row("2 rotation seen by all, " n " containers (" rdy[n] " mounted, " rounds[n] \
		    " rounds, " seen[n] "/" want[n] " reads)",
		    sprintf("after put returned: %.1f / %.1f / max %.1f ms", a50, a99, amax),
		    sprintf("from before put sent: %.1f / %.1f / max %.1f ms", b50, b99, bmax),
		    "—", "p99 < 50 ms", verdict(a99 < 50 && seen[n] == want[n] && seen[n] > 0))
		if (n in cost) {
			# rounds, CPU ns, system calls, read, writev of the daemon over the rounds
			split(cost[n], c, " "); per = c[1] * n
			row("2 daemon cost per container per rotation, " n " containers",
			    sprintf("%.1f µs CPU, %s system calls (%s read, %s writev)", c[2] / per / 1e3,
			    c[3] == "-" ? "?" : sprintf("%.1f", c[3] / per),
			    c[4] == "-" ? "?" : sprintf("%.1f", c[4] / per),
			    c[5] == "-" ? "?" : sprintf("%.1f", c[5] / per)), "—", "—", "—", "")
		}
	}
	for (i = 1; i <= ns; i++) {
		n = scales[i]
		split(st[n, "mounted"], s, " "); split(st[n, "idle"], s0, " ")
		row("3 scale, " n " containers: daemon RSS / fds / threads",
		    sprintf("%.1f MiB / %d / %d", s[1] / 1024, s[2], s[3]),
		    sprintf("idle daemon %.1f MiB / %d / %d", s0[1] / 1024, s0[2], s0[3]),
		    ratio(s[1], s0[1]), n >= 1000 ? "< 64 MiB at 1,000" : "—",
		    n >= 1000 ? verdict(s[1] < 65536 && rdy[n] >= 1000) : "")
		row("3 `secretctl mount` per container, " n " (" rfail[n] " failed, all up in " \
		    rsec[n] " s)", sprintf("%.2f / %.2f ms", ms50[n, "mount_ms"], ms99[n, "mount_ms"]),
		    sprintf("`secretctl whoami` %.2f / %.2f ms", ms50[n, "whoami_ms"], ms99[n, "whoami_ms"]),
		    ratio(ms50[n, "mount_ms"], ms50[n, "whoami_ms"]), "< 5 ms",
		    verdict(ms50[n, "mount_ms"] < 5 && rfail[n] == 0))
	}
	if ("secretd_newconn" in rate) {
	row("4 GET /v1/self/secrets/NAME, new connection", sprintf("%.0f req/s (%s)",
	    rate["secretd_newconn"], us("http.secretd_newconn")), sprintf("raw server %.0f req/s (%s)",
	    rate["raw_newconn"], us("http.raw_newconn")), ratio(rate["secretd_newconn"],
	    rate["raw_newconn"]) " (req/s)", "≥ 0.2", verdict(rate["secretd_newconn"] \
	    >= 0.2 * rate["raw_newconn"]))
	row("4 GET /v1/self/secrets/NAME, keep-alive", sprintf("%.0f req/s (%s)",
	    rate["secretd_keepalive"], us("http.secretd_keepalive")), sprintf("raw server %.0f req/s (%s)",
	    rate["raw_keepalive"], us("http.raw_keepalive")), ratio(rate["secretd_keepalive"],
	    rate["raw_keepalive"]) " (req/s)", "≥ 0.25", verdict(rate["secretd_keepalive"] \
	    >= 0.25 * rate["raw_keepalive"]))
	}
	if (srate != "") {
	row("5 durable put, 64 B (admin API)", sprintf("%.0f puts/s (%.2f / %.2f ms)", srate,
	    p50["store.store_put"] / 1e3, p99["store.store_put"] / 1e3), sprintf("write+fsync " \
	    "%.0f/s (%.2f / %.2f ms)", frate, p50["store.raw_fsync"] / 1e3, p99["store.raw_fsync"] / 1e3),
	    ratio(srate, frate) " (rate)", "none given", "—")
	row("5 key rotation over " krv " versions", sprintf("%.0f ms (again: %.0f ms); loop held at most %.1f ms (%.1f)", kr1, kr2, krst, krst2),
	    sprintf("storing them: %.0f ms", krfill), ratio(kr1, krfill), "none given", "—")
	}
	if ("hook.with" in p50) {
		added = (p50["hook.with"] - p50["hook.without"]) / 1e3
		row("6 runc start+exit with secretd-oci-hook, 3 secrets (+" sprintf("%.1f", added) \
		    " ms)", sprintf("%.1f / %.1f ms", p50["hook.with"] / 1e3, p99["hook.with"] / 1e3),
		    sprintf("without hook %.1f / %.1f ms", p50["hook.without"] / 1e3,
		    p99["hook.without"] / 1e3), ratio(p50["hook.with"], p50["hook.without"]),
		    "< 10 ms added", verdict(added < 10))
	}
}
