/**
 * The DINO augmentation recipe, apart from its implementation
 * (src/data/dino_augment.ts) so that the general recipe of augment.ts can
 * name it without the two modules importing each other.
 * @module
 */

/** The recipe (serializable, for the loader's workers). */
export interface DinoAugmentSpec {
  /** Side of both global views (the model's image size). */
  size: number;
  /** RandomResizedCrop scale range of the global views (the paper: 0.6-1). */
  scale: [number, number];
  /** Local crops per image (0: none, the paper's setting). */
  localCrops?: number;
  /** Side of the local crops. */
  localSize?: number;
  /** RandomResizedCrop scale range of the local crops (DINO: 0.05-0.4). */
  localScale?: [number, number];
}
