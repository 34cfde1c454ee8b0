import { describe, expect, it } from "vitest";
import { isRoutable, parseProcNetTcp } from "./network-service.js";

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12346 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0BB8 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 12347 1 0000000000000000 100 0 0 10 0`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 223 1 0000000000000000 100 0 0 10 0`;

describe("/proc/net/tcp parsing", () => {
  it("decodes addresses, ports, states and inodes", () => {
    const s = parseProcNetTcp(TCP, "tcp");
    expect(s[0]).toMatchObject({ localAddr: "0.0.0.0", localPort: 8080, state: "LISTEN", inode: 12345 });
    expect(s[1]).toMatchObject({ localAddr: "127.0.0.1", localPort: 3000, state: "LISTEN" });
    expect(s[2]).toMatchObject({ remoteAddr: "127.0.0.1", remotePort: 54000, state: "ESTABLISHED" });
    const v6 = parseProcNetTcp(TCP6, "tcp6");
    expect(v6[0]).toMatchObject({ localAddr: "::", localPort: 80, state: "LISTEN" });
    expect(v6[1]).toMatchObject({ localAddr: "::1", localPort: 8081 });
  });
  it("treats loopback as not routable", () => {
    expect(isRoutable("0.0.0.0")).toBe(true);
    expect(isRoutable("::")).toBe(true);
    expect(isRoutable("10.0.0.2")).toBe(true);
    expect(isRoutable("127.0.0.1")).toBe(false);
    expect(isRoutable("::1")).toBe(false);
  });
});
