/** The page's own elements, by id: a missing one is a broken page, said at once rather than as a null later. */
export function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id)
  if (!el) throw new Error(`#${id} missing from the page`)
  return el as T
}
