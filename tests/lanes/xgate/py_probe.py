# python3 (Debian's, -S: no site) in a cell: threads, the routed views through os and
# glibc's sysconf (which asks sysinfo), a subprocess through the cell loader.
import os
import subprocess
import threading

results = [None] * 4


def work(i):
    results[i] = (len(os.sched_getaffinity(0)),
                  os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20)


threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
child = subprocess.run(["/bin/echo", "child"], capture_output=True, text=True).stdout.strip()
same = all(r == results[0] for r in results)
print(f"python cpus={results[0][0]} mem_mib={results[0][1]} threads_agree={same} {child}")
