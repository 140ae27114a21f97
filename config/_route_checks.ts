/**
 * Finds routes that can never match. It asks the compiled route table itself, so the check and
 * the real lookup can never disagree about precedence.
 *
 * @module
 */

import { type RouteEntry, RouteTable } from "../routing/route_table.ts";
import { entryPath, type Issues } from "./_reader.ts";
import type { ListenerConfig, RouteConfig } from "./types.ts";

/**
 * Reports, for one listener, every route that no connection can reach (an error: the config
 * says something it does not do) and every route that loses part of what it lists (a warning).
 */
export function checkListenerRoutes(listener: ListenerConfig, issues: Issues): void {
  const table = new RouteTable(listener);
  const live = new Set<RouteConfig>();
  const dead = new Map<RouteConfig, { by: RouteConfig; key: string }[]>();
  for (const { protocol, key, entries } of table.lists()) {
    const covered = new Set<string>();
    let catchAll: RouteEntry | null = null;
    let lastCover: RouteEntry | null = null;
    for (const entry of entries) {
      const shadowedBy = catchAll ??
        (entry.alpn !== null && entry.alpn.every((a) => covered.has(a)) ? lastCover : null);
      if (shadowedBy !== null && shadowedBy.route !== entry.route) {
        const list = dead.get(entry.route) ?? [];
        list.push({ by: shadowedBy.route, key: `${protocol} ${key}` });
        dead.set(entry.route, list);
      } else {
        live.add(entry.route);
      }
      if (entry.alpn === null) catchAll ??= entry;
      else {
        for (const a of entry.alpn) covered.add(a);
        lastCover = entry;
      }
    }
  }
  listener.routes.forEach((route, index) => {
    const lost = dead.get(route);
    if (!lost) return;
    const path = `${entryPath("listeners", listener.name)}.routes[${index}]`;
    const by = lost[0].by;
    const byIndex = listener.routes.indexOf(by);
    const byText = `route "${by.name}" (routes[${byIndex}], line ${by.position.line})`;
    if (!live.has(route)) {
      issues.add(
        "error",
        route.position,
        path,
        `route "${route.name}" can never match: every connection it would take goes to ${byText} first`,
        "remove it, or make it more specific than the route that takes its connections",
      );
    } else {
      issues.add(
        "warning",
        route.position,
        path,
        `part of route "${route.name}" can never match (${
          lost.map((l) => l.key).join("; ")
        }): ${byText} takes it first`,
        "remove what it cannot reach, or narrow the earlier route",
      );
    }
  });
}
