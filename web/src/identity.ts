/** This user's name and colour: a friendly default, remembered in localStorage. */
import { readStorage, writeStorage } from './status.js'

export interface User {
  name: string
  color: string
}

const NAME_KEY = 'coedit:name'
const COLOR_KEY = 'coedit:color'
export const MAX_NAME_LENGTH = 40

const ADJECTIVES = ['Brave', 'Calm', 'Clever', 'Curious', 'Eager', 'Gentle', 'Happy', 'Jolly', 'Kind', 'Lively', 'Quiet', 'Swift', 'Witty', 'Bright']
const ANIMALS = ['Otter', 'Fox', 'Heron', 'Badger', 'Lynx', 'Panda', 'Robin', 'Koala', 'Falcon', 'Walrus', 'Dolphin', 'Owl', 'Hedgehog', 'Puffin']
// Readable on white with white text on top (labels), and distinct from each other.
export const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#db2777', '#4d7c0f', '#b45309', '#4f46e5']

const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!

export function loadUser(): User {
  let name = readStorage(NAME_KEY)?.trim().slice(0, MAX_NAME_LENGTH)
  if (!name) {
    name = `${pick(ADJECTIVES)} ${pick(ANIMALS)}`
    writeStorage(NAME_KEY, name)
  }
  let color = readStorage(COLOR_KEY)
  if (!color || !/^#[0-9a-f]{6}$/i.test(color)) {
    color = pick(COLORS)
    writeStorage(COLOR_KEY, color)
  }
  return { name, color }
}

export function saveName(name: string): void {
  writeStorage(NAME_KEY, name)
}
