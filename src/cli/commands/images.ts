// hutch images. (Stub: filled in with its milestone.)
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch images',
  summary: 'images (not implemented yet)',
  flags: [],
  async run() {
    throw new HutchError('EUNSUPPORTED', 'images is not implemented yet');
  },
};
